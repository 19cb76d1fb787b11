"""The README's "Try it" walkthrough as data, and how its printed output is matched against a
real run (tests/integration/test_walkthrough.py runs it).

The section's ```console blocks hold `$ command` lines, each followed by the output the README
shows for it. A block right after the comment `<!-- watch -->` is more output of the
`seatflow watch` started earlier (a person sees it in their other terminal).

Matching: every line the README shows must appear in the real output, in order, after
these parts are allowed to differ (they differ on every run): clock times (HH:MM:SS),
dates and weekdays, the booking ids the commands print (the README's ids stand for the
ones this run prints), table ids, the worker's port, and mail file names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from config.topics import Topic

SECTION = "## Try it"
TOPICS = [t.value for t in Topic]
_TOPIC_PREFIX = re.compile(r"\bseatflow\.(?=(?:" + "|".join(map(re.escape, TOPICS)) + r")\b)")
WATCH_MARK = "<!-- watch -->"
BOOKING_ID = re.compile(r"\bb-[0-9a-f]{10}\b")
# What differs between runs, and the pattern that stands for it.
_VARIABLE = {
    "booking": (BOOKING_ID.pattern, r"b-[0-9a-f]{10}"),
    "clock": (r"\b\d\d:\d\d:\d\d\b", r"\d\d:\d\d:\d\d"),
    "date": (r"\b\d{4}-\d\d-\d\d\b", r"\d{4}-\d\d-\d\d"),
    "weekday": (r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\b", r"[A-Z][a-z]{2}"),
    "table": (r"\bt\d+\b", r"t\d+"),
    # A booking's version grows with every status event, re-seating moves included, and
    # whether re-seating moves the walkthrough's booking depends on the evening so far.
    "version": (r"\bv\d+\b", r"v\d+"),
    "version_word": (r"\bversion \d+\b", r"version \d+"),
    "mail": (r"\b\d{10,}-\d+\.eml\b", r"\d+-\d+\.eml"),
}
_TOKENS = re.compile("|".join(f"(?P<{name}>{found})" for name, (found, _) in _VARIABLE.items()))

@dataclass
class Step:
    """A command and the output the README shows for it; or (command None) more output of
    the running `seatflow watch`."""

    command: str | None
    expected: list[str] = field(default_factory=list)

    @property
    def publishes(self) -> bool:
        """Commands with an effect run once; the others are repeated until their output
        shows what the README shows (it may take the service a moment)."""
        return bool(self.command) and re.search(
            r"\bseatflow bookings (send|update|cancel)\b", self.command or "") is not None

    @property
    def is_watch(self) -> bool:
        return bool(self.command) and re.search(r"\bseatflow watch\b", self.command or "") \
            is not None


def section(readme: str) -> str:
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    return readme[start:] if end < 0 else readme[start:end]


def steps(readme: str) -> list[Step]:
    text = section(readme)
    out: list[Step] = []
    for match in re.finditer(r"(?P<before>[^\n]*)\n```console\n(?P<body>.*?)\n```", text,
                             re.DOTALL):
        body = match.group("body").splitlines()
        if match.group("before").strip() == WATCH_MARK:
            out.append(Step(None, [line for line in body if line.strip()]))
            continue
        for line in body:
            if line.startswith("$ "):
                out.append(Step(line[2:].strip()))
            elif line.strip():
                if not out or out[-1].command is None:
                    raise ValueError(f"output before any command in the walkthrough: {line!r}")
                out[-1].expected.append(line)
    return out


def readme_steps(path: Path) -> list[Step]:
    return steps(path.read_text(encoding="utf-8"))


def _squash(line: str) -> str:
    return " ".join(line.split())


@dataclass
class Matcher:
    """Expected README lines -> patterns; learns which real booking id each README id is."""

    port: int | None = None
    ids: dict[str, str] = field(default_factory=dict)
    # The run's topic prefix, for the README's `seatflow.` topic names.
    prefix: str = "seatflow."

    def substitute(self, text: str) -> str:
        """The README's text with this run's ids, port and topic prefix."""
        for readme_id, real_id in self.ids.items():
            text = text.replace(readme_id, real_id)
        if self.port is not None:
            text = text.replace("127.0.0.1:6066", f"127.0.0.1:{self.port}")
        return _TOPIC_PREFIX.sub(lambda _: self.prefix, text)

    def pattern(self, expected: str) -> re.Pattern[str]:
        text = _squash(self.substitute(expected))
        regex, position = "", 0
        for token in _TOKENS.finditer(text):
            regex += re.escape(text[position:token.start()])
            kind = token.lastgroup or ""
            if kind == "booking" and token.group() in self.ids.values():
                regex += re.escape(token.group())  # an id this run printed: exactly it
            else:
                regex += _VARIABLE[kind][1]
            position = token.end()
        return re.compile(regex + re.escape(text[position:]))

    def learn(self, expected: list[str], actual: str) -> None:
        """After a command that prints a new booking id on its last line: remember which
        real id the README's id stands for."""
        lines = [line for line in actual.splitlines() if line.strip()]
        if not expected or not lines:
            return
        readme_id, real_id = expected[-1].strip(), lines[-1].strip()
        if BOOKING_ID.fullmatch(readme_id) and readme_id not in self.ids:
            self.ids[readme_id] = real_id

    def missing(self, expected: list[str], actual: str, *, in_order: bool = True) -> list[str]:
        """README lines the output does not show (in order, unless `in_order` is False)."""
        lines = [_squash(line) for line in actual.splitlines()]
        missing = []
        position = 0
        for line in expected:
            pattern = self.pattern(line)
            found = next((i for i in range(position if in_order else 0, len(lines))
                          if pattern.fullmatch(lines[i])), None)
            if found is None:
                missing.append(line)
            elif in_order:
                position = found + 1
        return missing
