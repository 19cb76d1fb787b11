"""The embedded stack works for real: broker metadata, PostgreSQL queries, mail on disk."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient

from devstack import (
    EmbeddedStartError,
    free_port,
    start_broker,
    start_mail_sink,
    start_postgres,
)
from devstack.postgres import EMBEDDED_CONF
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


async def test_broker_answers_metadata_and_round_trips_a_record(stack, settings) -> None:
    client = AIOKafkaClient(bootstrap_servers=stack.kafka_bootstrap)
    await client.bootstrap()
    try:
        metadata = await client.fetch_all_metadata()
        assert [b.port for b in metadata.brokers()] == [stack.broker.port]
    finally:
        await client.close()

    topic = f"{settings.topic_prefix}roundtrip"
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"v1", key=b"k1")
        await producer.send_and_wait(topic, b"v2", key=b"k2")
    finally:
        await producer.stop()
    records = await read_topic(stack.kafka_bootstrap, topic, min_count=2)
    assert [(r.key, r.value) for r in records] == [(b"k1", b"v1"), (b"k2", b"v2")]


async def test_postgres_answers_queries(stack, settings) -> None:
    for url in (stack.database_url, settings.database_url):
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("select 1") == 1
            assert (await conn.fetchval("show server_version")).startswith("16")
            assert await conn.fetchval("show shared_buffers") == EMBEDDED_CONF["shared_buffers"]
        finally:
            await conn.close()


async def test_each_test_gets_its_own_database(stack, settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("select current_database()") == settings.topic_prefix[:-1]
        tables = await conn.fetchval(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        )
        assert tables == 0
    finally:
        await conn.close()


def _email(to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "seatflow <no-reply@seatflow.local>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("hello from the test")
    return msg


async def test_mail_sink_stores_readable_eml_files_in_order(stack, settings) -> None:
    tag = settings.topic_prefix[:-1]
    for n in range(3):
        await aiosmtplib.send(
            _email(f"guest-{tag}@example.com", f"{tag} #{n}"),
            hostname=stack.smtp_host,
            port=stack.smtp_port,
        )
    mine = [m for m in stack.mail_sink.messages() if tag in m["Subject"]]
    assert [m["Subject"] for m in mine] == [f"{tag} #0", f"{tag} #1", f"{tag} #2"]
    assert mine[0]["X-Envelope-To"] == f"guest-{tag}@example.com"
    assert mine[0].get_content().strip() == "hello from the test"
    files = [p for p in stack.mail_dir.iterdir() if tag in p.read_text()]
    assert len(files) == 3 and all(p.suffix == ".eml" for p in files)


async def test_mail_sink_rejects_matching_recipients_and_survives_restart(tmp_path) -> None:
    port = free_port()
    sink = start_mail_sink("127.0.0.1", port, tmp_path / "mail")
    try:
        sink.reject_recipients(r"^bounce@", code=550)
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await aiosmtplib.send(
                _email("bounce@example.com", "x"), hostname="127.0.0.1", port=port
            )
        assert refused.value.recipients[0].code == 550
        await aiosmtplib.send(_email("ok@example.com", "first"), hostname="127.0.0.1", port=port)

        sink.stop()
        with pytest.raises(aiosmtplib.SMTPConnectError):
            await aiosmtplib.send(_email("ok@example.com", "down"), hostname="127.0.0.1", port=port)
        sink.start()
        await aiosmtplib.send(_email("ok@example.com", "second"), hostname="127.0.0.1", port=port)
    finally:
        sink.stop()
    assert [m["Subject"] for m in sink.messages()] == ["first", "second"]


def test_port_in_use_names_the_component(stack, tmp_path) -> None:
    with pytest.raises(EmbeddedStartError, match=rf"^broker: port {stack.broker.port} is in use"):
        start_broker(stack.broker.port)
    with pytest.raises(EmbeddedStartError, match=rf"^mail sink: port {stack.smtp_port} is in use"):
        start_mail_sink("127.0.0.1", stack.smtp_port, tmp_path / "mail")


def test_postgres_start_failure_names_the_component(tmp_path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("occupied")
    with pytest.raises(EmbeddedStartError, match=r"^postgres: ") as err:
        start_postgres(not_a_dir / "pgdata")
    assert "\n" not in str(err.value)


def test_broker_stop_leaves_no_process(tmp_path) -> None:
    broker = start_broker(free_port(), log_path=tmp_path / "broker.log")
    pid = broker.process.pid
    broker.stop()
    assert not _alive(pid)


def test_broker_dies_with_a_killed_parent(tmp_path) -> None:
    script = (
        "import sys, time\n"
        "from devstack import free_port, start_broker\n"
        "print(start_broker(free_port()).process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        broker_pid = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert _alive(broker_pid)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while _alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(broker_pid), "broker outlived its SIGKILLed parent"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --- `seatflow dev` end to end ---------------------------------------------------------------------


@pytest.mark.skipif(
    not (REPO / "seatflow" / "worker.py").exists(),
    reason="seatflow/worker.py (run_worker) is not written yet",
)
def test_dev_comes_up_healthy(tmp_path) -> None:
    kafka_port, smtp_port, web_port = free_port(), free_port(), free_port()
    home = tmp_path / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEATFLOW_", "SUPPRESS_", "FEATURE_"))
    }
    env.update(
        SEATFLOW_HOME=str(home),
        SEATFLOW_KAFKA_BOOTSTRAP=f"127.0.0.1:{kafka_port}",
        SEATFLOW_SMTP_PORT=str(smtp_port),
        SEATFLOW_WEB_PORT=str(web_port),
        SEATFLOW_TOPIC_PARTITIONS="2",
    )
    out_path = tmp_path / "dev.out"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "seatflow.cli", "dev"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a stray child can be cleaned up if the test fails
        )
    try:
        health = f"http://127.0.0.1:{web_port}/health"
        healthy, last = _wait_healthy(proc, health, timeout=30.0)
        tail = "\n".join(out_path.read_text(errors="replace").splitlines()[-15:])
        assert healthy, f"GET {health} never answered 200 (last: {last}); output tail:\n{tail}"
        output = out_path.read_text()
        assert str((home / "mail").resolve()) in output or str(home / "mail") in output
        assert f"127.0.0.1:{kafka_port}" in output
        postmaster = _postmaster_pid(home / "pgdata")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert postmaster is not None and children, "expected a broker child and a postmaster"

        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            tail = "\n".join(out_path.read_text(errors="replace").splitlines()[-25:])
            pytest.fail(f"seatflow dev still running 15 s after SIGINT; output tail:\n{tail}")
        deadline = time.monotonic() + 15
        leftovers = [p.pid for p in children if _alive(p.pid)] + (
            [postmaster] if _alive(postmaster) else []
        )
        while leftovers and time.monotonic() < deadline:
            time.sleep(0.2)
            leftovers = [pid for pid in leftovers if _alive(pid)]
        assert leftovers == [], f"processes left behind: {leftovers}"
    finally:
        # Only after a failure: leave nothing behind for the rest of the suite. The broker
        # dies with its parent (PR_SET_PDEATHSIG); the daemonised postmaster needs a signal.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        postmaster = _postmaster_pid(home / "pgdata")
        if postmaster is not None and _alive(postmaster):
            os.kill(postmaster, signal.SIGQUIT)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, timeout: float) -> tuple[bool, str]:
    """(healthy, what the last attempt saw)."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False, f"seatflow dev exited with code {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True, "200"
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:200]!r}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.3)
    return False, last


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def test_dev_reports_a_busy_port_in_one_line(stack, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATFLOW_")}
    env.update(
        SEATFLOW_HOME=str(tmp_path / "home"),
        SEATFLOW_KAFKA_BOOTSTRAP=stack.kafka_bootstrap,  # already taken by the session broker
        SEATFLOW_SMTP_PORT=str(free_port()),
    )
    result = subprocess.run(
        [sys.executable, "-m", "seatflow.cli", "dev"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert re.fullmatch(r"broker: port \d+ is in use — .*\n", result.stderr), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
