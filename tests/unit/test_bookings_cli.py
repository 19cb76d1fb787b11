"""`seatflow bookings …` without a broker: flags, the events they make, errors naming the flag."""

from __future__ import annotations

import argparse
from datetime import date, time
from typing import Any

import pytest

from config.settings import Settings
from seatflow import bookings_cli
from seatflow.bookings_cli import (
    add_commands,
    created_fields,
    describe,
    differences,
    parse_date,
    updated_fields,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seatflow")
    add_commands(p.add_subparsers(dest="command", required=True))
    return p


def parse(*argv: str) -> argparse.Namespace:
    return parser().parse_args(list(argv))


SEND = ["bookings", "send", "--restaurant", "r-ember", "--date", "2031-12-05", "--time",
        "19:00", "--party", "4"]


@pytest.mark.parametrize(
    ("argv", "flag", "text"),
    [
        (["--date", "05/12/2031"], "--date", "YYYY-MM-DD"),
        (["--date", "2031-02-30"], "--date", "no such date"),
        (["--time", "7pm"], "--time", "HH:MM"),
        (["--time", "24:00"], "--time", "HH:MM"),
        (["--party", "0"], "--party", "at least 1"),
        (["--party", "four"], "--party", "number of guests"),
        (["--email", "ada at example"], "--email", "email address"),
        (["--source", "robot"], "--source", "invalid choice"),
        (["--end", "25:00"], "--end", "HH:MM"),
    ],
)
def test_bad_flags_are_usage_errors_naming_the_flag(
    argv: list[str], flag: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(*SEND, *argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and text in err
    assert "Traceback" not in err


@pytest.mark.parametrize("missing", ["--restaurant", "--date", "--time", "--party"])
def test_send_needs_restaurant_date_time_and_party(
    missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    i = SEND.index(missing)
    with pytest.raises(SystemExit) as exit_:
        parse(*SEND[:i], *SEND[i + 2:])
    assert exit_.value.code == 2
    assert missing in capsys.readouterr().err


def test_dates_accept_today_and_tomorrow() -> None:
    assert parse_date("today", today=date(2031, 12, 31)) == date(2031, 12, 31)
    assert parse_date("Tomorrow", today=date(2031, 12, 31)) == date(2032, 1, 1)


def test_send_makes_a_valid_booking_created() -> None:
    args = parse(*SEND, "--name", "Ada Lovelace", "--email", "ada@example.com", "--end", "21:00",
                 "--idempotency-key", "k-1")
    change = bookings_cli.build_change("booking.created", "b-1", "r-ember",
                                       **created_fields(args))
    assert change.type == "booking.created" and change.source == "guest"
    assert change.idempotency_key == "k-1"
    b = change.booking
    assert (b.booking_id, b.restaurant_id, b.booking_date, b.start_time, b.end_time,
            b.party_size) == ("b-1", "r-ember", date(2031, 12, 5), time(19), time(21), 4)
    assert (b.customer_name, b.customer_email, b.customer_phone) == (
        "Ada Lovelace", "ada@example.com", None)


def test_a_walk_in_has_no_email_and_the_walk_in_channel() -> None:
    args = parse(*SEND, "--source", "ops", "--email", "")
    fields = created_fields(args)
    assert fields["customer_email"] is None
    assert (fields["source"], fields["channel"]) == ("ops", "ops.walkin")
    assert fields["customer_name"] == bookings_cli.DEFAULT_NAME


def test_new_booking_ids_differ() -> None:
    ids = {bookings_cli.new_booking_id() for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("b-") for i in ids)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--restaurant", ""], "--restaurant: String should have at least 1 character"),
        (["--name", "x" * 501], "--name: Value should have at most 500 items"),
        (["--party", "1001"], "--party: Input should be less than or equal to 1000"),
        (["--end", "19:00"], "--end must differ from --time"),
        (["--booking-id", "a\x00b"], "--booking-id: must not contain the NUL character"),
    ],
)
def test_input_the_schema_refuses_is_exit_2_naming_the_flag_and_nothing_is_published(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    published: list[Any] = []
    monkeypatch.setattr(bookings_cli, "publish", lambda settings, change: published.append(change))

    code = bookings_cli.cmd_send(Settings(), parse(*SEND, *argv))

    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert published == []


def test_send_prints_the_booking_id_on_the_last_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[Any] = []
    monkeypatch.setattr(bookings_cli, "publish", lambda settings, change: published.append(change))

    code = bookings_cli.cmd_send(Settings(), parse(*SEND, "--booking-id", "b-chosen"))

    assert code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "b-chosen"
    assert [c.booking.booking_id for c in published] == ["b-chosen"]


def test_a_broker_that_cannot_be_reached_is_exit_1_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(settings: Settings, change: Any) -> None:
        raise bookings_cli.BrokerUnreachable("broker: cannot publish to 127.0.0.1:1")

    monkeypatch.setattr(bookings_cli, "publish", unreachable)

    assert bookings_cli.cmd_send(Settings(), parse(*SEND)) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("broker: ") and captured.out == ""


STORED: dict[str, Any] = {
    "booking_id": "b-1", "restaurant_id": "r-ember", "status": "confirmed",
    "booking_date": "2031-12-05", "start_time": "19:00", "end_time": "20:15",
    "requested_end_time": None, "party_size": 4, "customer_name": "Ada Lovelace",
    "customer_email": "ada@example.com", "customer_phone": "+44 1", "notes": "window",
    "seating_preference": "terrace", "source": "guest", "channel": "web",
}


def test_update_changes_what_is_given_and_keeps_every_other_field_as_stored() -> None:
    args = parse("bookings", "update", "b-1", "--restaurant", "r-ember", "--time", "20:00",
                 "--party", "12")
    fields = updated_fields(args, STORED)
    assert fields["start_time"] == "20:00" and fields["party_size"] == 12
    assert fields["booking_date"] == "2031-12-05"
    # the derived end is not sent back as if requested (that would be a realignment)
    assert fields["end_time"] is None
    for name in ("customer_name", "customer_email", "customer_phone", "notes",
                 "seating_preference", "source", "channel"):
        assert fields[name] == STORED[name], name
    change = bookings_cli.build_change("booking.updated", "b-1", "r-ember", **fields)
    assert change.booking.party_size == 12
    assert differences(STORED, fields) == ["time 19:00 -> 20:00", "party 4 -> 12"]


def test_update_keeps_a_requested_end_unless_told_auto() -> None:
    stored = {**STORED, "requested_end_time": "23:30"}
    kept = updated_fields(parse("bookings", "update", "b-1", "--restaurant", "r",
                                "--party", "2"), stored)
    assert kept["end_time"] == "23:30"
    dropped = updated_fields(parse("bookings", "update", "b-1", "--restaurant", "r",
                                   "--end", "auto"), stored)
    assert dropped["end_time"] is None


def test_update_without_a_field_to_change_is_a_usage_error(
    capsys: pytest.CaptureFixture[str]
) -> None:
    code = bookings_cli.cmd_update(Settings(), parse("bookings", "update", "b-1",
                                                     "--restaurant", "r-ember"))
    assert code == 2
    assert "nothing to change" in capsys.readouterr().err


def test_a_bad_api_url_is_a_usage_error_naming_the_setting(
    capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings().model_copy(update={"api_url": "ftp://nowhere"})
    code = bookings_cli.cmd_show(settings, parse("bookings", "show", "b-1"))
    assert code == 2
    assert "SEATFLOW_API_URL" in capsys.readouterr().err


def test_describe_a_booking_for_a_person() -> None:
    view = {**STORED, "booking_version": 2, "table_ids": ["t4", "t5"],
            "emails": [{"kind": "confirmed", "status": "sent", "recipient": "ada@example.com"}]}
    text = describe(view, "http://127.0.0.1:6066/restaurants/r-ember/days/2031-12-05")
    lines = text.splitlines()
    assert lines[0].split() == ["booking", "b-1", "at", "r-ember"]
    assert "confirmed  (version 2)" in lines[1]
    assert "2031-12-05 19:00-20:15, party of 4" in text
    assert any(line.startswith("tables") and line.endswith("  t4, t5") for line in lines)
    assert any(line.startswith("emails") and "confirmed: sent to ada@example.com" in line
               for line in lines)
    assert lines[-1].startswith("day") and lines[-1].endswith("/days/2031-12-05")


def test_describe_a_pending_booking_says_why() -> None:
    view = {**STORED, "status": "pending", "table_ids": [], "alloc_state": "exhausted",
            "attempts": 4, "last_failure": "no_capacity", "emails": []}
    text = describe(view)
    assert "no table: retries used up (4 attempts, last: no_capacity)" in text
    assert any(line.startswith("tables") and line.endswith("-") for line in text.splitlines())
