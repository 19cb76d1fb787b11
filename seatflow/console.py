"""What every `seatflow` command shares with the person at the terminal: exit codes and the
one-line failure message (docs/interface.md §8)."""

from __future__ import annotations

import sys
from typing import TextIO

EXIT_OK = 0
EXIT_FAILED = 1  # at run time: an unreachable broker, database or API, a partial replay
EXIT_USAGE = 2  # bad usage or bad input; the message names the flag or field
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_FAILED, *, err: TextIO | None = None) -> int:
    """Print `message` on one line to stderr and return `code` for the command to exit with."""
    print(message, file=err or sys.stderr, flush=True)
    return code
