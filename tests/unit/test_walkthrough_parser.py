"""The README walkthrough's parser and matcher (tests/support/walkthrough.py): they must read
the real README and must fail on output that differs where it matters."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.walkthrough import Matcher, readme_steps, steps

README = Path(__file__).resolve().parents[2] / "README.md"

SAMPLE = """# x

## Try it

Send one:

```console
$ seatflow bookings send --restaurant r-ember --date tomorrow --time 19:00 --party 4
booking.created published: r-ember, Sat 2026-12-05 19:00, party of 4, Guest
b-0123456789
```

```console
$ seatflow watch --booking b-0123456789
19:02:11  b-0123456789  booking.confirmed  confirmed  tables t4  (created, v2)
```

<!-- watch -->
```console
19:03:40  b-0123456789  booking.cancelled  cancelled  (v3)
```

## Next

```console
$ not part of it
```
"""


def test_commands_outputs_and_watch_blocks_are_read_from_the_section() -> None:
    parsed = steps(SAMPLE)
    assert [s.command for s in parsed] == [
        "seatflow bookings send --restaurant r-ember --date tomorrow --time 19:00 --party 4",
        "seatflow watch --booking b-0123456789",
        None,
    ]
    assert parsed[0].publishes and not parsed[1].publishes and parsed[1].is_watch
    assert parsed[0].expected[-1] == "b-0123456789"
    assert parsed[2].expected == ["19:03:40  b-0123456789  booking.cancelled  cancelled  (v3)"]


def test_the_readme_has_a_walkthrough_of_five_or_more_commands() -> None:
    parsed = readme_steps(README)
    commands = [s.command for s in parsed if s.command]
    assert len(commands) >= 5
    assert any(s.is_watch for s in parsed)
    assert sum(s.publishes for s in parsed) >= 3
    assert all(s.expected for s in parsed), "every command shows its output"


def test_ids_times_dates_and_tables_may_differ() -> None:
    m = Matcher(port=41234)
    expected = ["booking.created published: r-ember, Sat 2026-12-05 19:00, party of 4, Guest",
                "b-0123456789"]
    actual = ("booking.created published: r-ember, Tue 2031-01-07 19:00, party of 4, Guest\n"
              "b-aaaaaaaaaa\n")
    assert m.missing(expected, actual) == []
    m.learn(expected, actual)
    assert m.substitute("seatflow watch --booking b-0123456789") == \
        "seatflow watch --booking b-aaaaaaaaaa"
    watch = ["19:02:11  b-0123456789  booking.confirmed  confirmed  tables t4  (created, v2)"]
    assert m.missing(watch, "23:59:01 b-aaaaaaaaaa booking.confirmed confirmed tables t11 "
                            "(created, v2)") == []
    assert m.missing(["day  http://127.0.0.1:6066/restaurants/r-ember/days/2026-12-05"],
                     "day http://127.0.0.1:41234/restaurants/r-ember/days/2031-01-07") == []


def test_topic_names_carry_the_runs_prefix() -> None:
    m = Matcher(prefix="t1234.")
    expected = ["watching seatflow.booking-status, seatflow.dead-letters (Ctrl-C to stop)"]
    assert m.missing(expected, "watching t1234.booking-status, t1234.dead-letters (Ctrl-C to "
                               "stop)") == []
    assert m.missing(expected, "watching seatflow.booking-status, seatflow.dead-letters "
                               "(Ctrl-C to stop)") == expected
    assert m.substitute("seatflow bookings show x; .seatflow/mail") == \
        "seatflow bookings show x; .seatflow/mail"


@pytest.mark.parametrize(
    "actual",
    [
        "23:59:01 b-bbbbbbbbbb booking.confirmed confirmed tables t4 (created, v2)",  # other id
        "23:59:01 b-aaaaaaaaaa booking.pending pending tables t4 (created, v2)",  # other event
        # (not the version: re-seating moves add status events, so it varies run to run)
        "23:59:01 b-aaaaaaaaaa booking.confirmed confirmed tables t4 (modification, v2)",  # episode
        "",
    ],
)
def test_what_matters_must_match(actual: str) -> None:
    m = Matcher(ids={"b-0123456789": "b-aaaaaaaaaa"})
    watch = ["19:02:11  b-0123456789  booking.confirmed  confirmed  tables t4  (created, v2)"]
    assert m.missing(watch, actual) == watch


def test_lines_must_come_in_order_unless_told_otherwise() -> None:
    m = Matcher()
    expected = ["first", "second"]
    assert m.missing(expected, "second\nfirst") == ["second"]
    assert m.missing(expected, "second\nfirst", in_order=False) == []
    assert m.missing(expected, "first\nnoise\nsecond") == []
