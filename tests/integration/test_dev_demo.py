"""`seatflow dev --demo` end to end: the banner links the day view, the scripted evening
reaches the worker, and the day view shows it (docs/interface.md §8)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devstack import free_port
from seatflow.demo import EVENING, demo_day
from tests.support.dayview import bars, svg_of

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEMO_DONE = re.compile(r"demo: (\d+) events published for r-ember on (\S+); the day: (\S+)")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, repr(exc)


def test_dev_demo_plays_an_evening_the_day_view_shows(tmp_path: Path) -> None:
    kafka_port, smtp_port, web_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SEATFLOW_", "SUPPRESS_", "FEATURE_"))}
    env.update(SEATFLOW_HOME=str(tmp_path / "home"),
               SEATFLOW_KAFKA_BOOTSTRAP=f"127.0.0.1:{kafka_port}",
               SEATFLOW_SMTP_PORT=str(smtp_port), SEATFLOW_WEB_PORT=str(web_port),
               SEATFLOW_TOPIC_PARTITIONS="2")
    out_path = tmp_path / "dev.out"
    with out_path.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "seatflow.cli", "dev", "--demo"],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (done := DEMO_DONE.search(out_path.read_text(errors="replace"))):
            assert proc.poll() is None, out_path.read_text(errors="replace")
            assert time.monotonic() < deadline, out_path.read_text(errors="replace")
            time.sleep(0.5)
        output = out_path.read_text(errors="replace")
        day = demo_day().isoformat()
        assert done.group(2) == day
        assert done.group(3) == f"http://127.0.0.1:{web_port}/restaurants/r-ember/days/{day}"
        assert re.search(rf"day view +http://127\.0\.0\.1:{web_port}/restaurants/r-ember/days/"
                         r"\d{4}-\d\d-\d\d", output)
        assert "[^--Consumer]: Starting" not in output  # the concise log

        # Every guest of the script seated or waiting: the day view shows them.
        deadline = time.monotonic() + 60
        while True:
            status, page = get(done.group(3))
            drawn = {a.get("data-booking-id") for a in bars(svg_of(page))} if status == 200 \
                else set()
            if len(drawn) >= len(EVENING) - 1:  # one of them is cancelled
                break
            assert time.monotonic() < deadline, (status, drawn, page[:500])
            time.sleep(0.5)
        assert all(bid.startswith("demo-") for bid in drawn)
        assert 'class="pending-booking' in page  # the party too big to seat waits

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in out_path.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        pid_file = tmp_path / "home" / "pgdata" / "postmaster.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGQUIT)
            except (OSError, ValueError, IndexError):
                pass
