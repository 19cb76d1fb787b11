"""No guest's data and no secret in what a worker and the CLI print (docs/deployment.md
"Personal data"): the logs of a full booking life and of failures (SMTP refusals, a
rejected SMTP login, dead letters, bad settings), `/health`, and the erase command's output
are searched for the guests' names, addresses, phones and notes, and for every password
and token the processes were given.

Mail goes to a real SMTP server that demands a login (aiosmtpd with AUTH), so the password
is really used; it refuses some recipients the way Postfix does, quoting the address.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from config.settings import Settings
from devstack import free_port
from producers.publisher import Publisher, make_cancel, make_change
from tests.integration.conftest import Harness, restaurant
from tests.integration.test_lifecycle import DAY, email_sent
from tests.support.kafka import read_topic
from tests.support.workers import REPO_ROOT, SEATFLOW_BIN, WorkerProcess, settings_env

# The test server takes a password over plain SMTP on loopback, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SMTP_USER = "seatflow-mailer"
SMTP_PASSWORD = "smtp-" + secrets.token_hex(8)
WRONG_SMTP_PASSWORD = "wrong-" + secrets.token_hex(8)
SASL_PASSWORD = "sasl-" + secrets.token_hex(8)
API_TOKEN = "tok-" + secrets.token_hex(16)


@dataclass
class AuthMailServer:
    """Accepts mail only after AUTH with SMTP_USER / SMTP_PASSWORD; refuses recipients
    starting with `reject` (550) or `defer` (451), quoting the address like Postfix."""

    delivered: list[bytes] = field(default_factory=list)
    logins: list[bool] = field(default_factory=list)

    def authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
              and auth_data.password == SMTP_PASSWORD.encode())
        self.logins.append(ok)
        # handled=False: aiosmtpd answers 535 itself (the default leaves the client waiting).
        return AuthResult(success=ok, handled=False)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if local.startswith("defer"):
            return f"451 4.3.0 <{address}>: Temporary lookup failure"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.delivered.append(envelope.original_content)
        return "250 Message accepted"


@pytest.fixture
def auth_mail_server() -> Iterator[tuple[AuthMailServer, int]]:
    server = AuthMailServer()
    port = free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port,
                            authenticator=server.authenticate, auth_required=True,
                            auth_require_tls=False)
    controller.start()
    try:
        yield server, port
    finally:
        controller.stop()


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SEATFLOW_BIN), *args], env=settings_env(settings),
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def lines_holding(text: str, needles: list[str]) -> list[str]:
    return [line for line in text.splitlines()
            if any(n.lower() in line.lower() for n in needles)]


async def test_logs_output_and_health_hold_no_guest_data_or_secret(
    start_worker: Callable[..., WorkerProcess], stack: Any,
    auth_mail_server: tuple[AuthMailServer, int],
) -> None:
    server, smtp_port = auth_mail_server
    worker = start_worker(smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_username=SMTP_USER,
                          smtp_password=SecretStr(SMTP_PASSWORD),
                          api_token=SecretStr(API_TOKEN))
    h = Harness(worker, stack)
    tag = h.tag
    zeb = {"customer_name": f"Zebulon Quaxworth{tag}",
           "customer_email": f"Zebulon.Quaxworth.{tag}@privacy.example",
           "customer_phone": f"+44 7700 9{tag}", "notes": f"walnut allergy, ask for Zeb{tag}"}
    refused = {"customer_name": f"Yolanda Pemberton{tag}",
               "customer_email": f"reject.yolanda.{tag}@privacy.example",
               "customer_phone": f"+1 555 01{tag}"}
    deferred = {"customer_name": f"Xavier Okonkwo{tag}",
                "customer_email": f"defer.xavier.{tag}@privacy.example"}
    guest_data = [v for g in (zeb, refused, deferred) for v in g.values()]
    rid = h.ids("r")
    a, b, c, d = h.ids("a"), h.ids("b"), h.ids("c"), h.ids("d")

    def change(kind: str, bid: str, guest: dict[str, str], *, start: str = "19:00",
               party: int = 2) -> Any:
        return make_change(kind, bid, rid, booking_date=DAY, start_time=start,
                           party_size=party, **guest)

    # A full life: created, confirmed, edited (details, then the time), cancelled; a party
    # too big to seat (pending, retries used up); one refused for good, one deferred.
    await h.publish(restaurant(rid, tables=2), change("booking.created", a, zeb))
    await h.wait_booking(a, email_sent("confirmed"))
    await h.publish(change("booking.updated", a, {**zeb, "customer_phone": "+44 7700 900999"}),
                    change("booking.updated", a, zeb, start="20:00"),
                    change("booking.created", b, zeb, party=5),
                    change("booking.created", c, refused, start="21:00"),
                    change("booking.created", d, deferred, start="22:00"))
    await h.wait_booking(a, email_sent("modification_confirmed"))
    await h.wait_booking(b, email_sent("allocation_failed"))
    await h.wait_booking(c, lambda v: any(e["status"] == "failed" for e in v["emails"]))
    await h.wait_booking(d, lambda v: any(e["attempts"] >= 2 for e in v["emails"]))
    await h.publish(make_cancel(a, rid))
    await h.wait_booking(a, email_sent("cancelled"))

    # Dead letters carrying the guest's data: not JSON, against the schema, and the guest's
    # address where a date belongs (a validation message quotes a malformed date).
    async with Publisher(worker.settings) as pub:
        topic = worker.topics.booking_changes
        not_json = json.dumps({k: zeb[k] for k in ("customer_name", "customer_email")})
        await pub.publish_raw(topic, b"dl-1", (not_json[:-1] + ", oops").encode())
        bad = change("booking.created", h.ids("dl2"), zeb).model_dump(mode="json")
        bad["booking"]["party_size"] = 0
        await pub.publish_raw(topic, b"dl-2", json.dumps(bad).encode())
        bad["booking"]["party_size"] = 2
        bad["booking"]["booking_date"] = zeb["customer_email"]
        await pub.publish_raw(topic, b"dl-3", json.dumps(bad).encode())
        await pub.flush()
    letters = await read_topic(worker.settings.kafka_bootstrap, worker.topics.dead_letters,
                               min_count=3, timeout=30)
    assert len(letters) == 3
    await h.settle(a, b, c, d, restaurant_id=rid, emails=True)

    # The data really flowed where it belongs: the login worked, the guest got mail.
    assert server.logins and all(server.logins)
    assert any(zeb["customer_email"].encode() in m for m in server.delivered)

    # A worker whose SMTP login is refused.
    wrong = start_worker(smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_username=SMTP_USER,
                         smtp_password=SecretStr(WRONG_SMTP_PASSWORD))
    hw = Harness(wrong, stack)
    rid_w, e = hw.ids("r"), hw.ids("e")
    await hw.publish(restaurant(rid_w), make_change(
        "booking.created", e, rid_w, booking_date=DAY, start_time="19:00", party_size=2, **zeb))
    await hw.wait_booking(e, lambda v: any(m["attempts"] >= 1 and m["status"] == "due"
                                           for m in v["emails"]))
    await wait_until(lambda: "refused the session" in wrong.log_path.read_text(),
                     "the refused login is logged")

    # Bad settings, refused at start: a SASL password without SASL; a wide bind without a
    # token. Both with every secret set.
    secret_settings = worker.settings.model_copy(update={
        "kafka_sasl_username": "seatflow", "kafka_sasl_password": SecretStr(SASL_PASSWORD)})
    bad_runs = [run_cli(secret_settings, "worker"),
                run_cli(worker.settings.model_copy(update={"api_token": None,
                                                           "web_host": "0.0.0.0"}), "worker")]
    assert [r.returncode for r in bad_runs] == [2, 2], bad_runs
    assert "SEATFLOW_KAFKA_SASL_PASSWORD" in bad_runs[0].stderr

    erase = run_cli(worker.settings, "guests", "erase", "--email", zeb["customer_email"])
    assert erase.returncode == 0, erase

    health = [worker.get("/health"), wrong.get("/health")]
    assert [status for status, _ in health] == [200, 200]

    texts = {
        "worker log": worker.log_path.read_text(),
        "worker log (login refused)": wrong.log_path.read_text(),
        **{f"bad settings run {i}": r.stdout + r.stderr for i, r in enumerate(bad_runs)},
        "erase output": erase.stdout + erase.stderr,
        "/health": repr(health),
    }
    # The failures were logged (ids only), so the search below looked at them.
    log = texts["worker log"]
    assert f"email confirmed for {c}: failed" in log
    assert f"email confirmed for {d}: retry" in log
    assert log.count("dead-lettering") >= 3
    secrets_given = [SMTP_PASSWORD, WRONG_SMTP_PASSWORD, SASL_PASSWORD, API_TOKEN]
    leaks = {name: lines_holding(text, guest_data + secrets_given)
             for name, text in texts.items()}
    assert not any(leaks.values()), leaks
    # /health names no connection string or host of the database and broker.
    for _, body in health:
        assert "postgresql" not in repr(body) and stack.kafka_bootstrap not in repr(body)
        assert str(stack.root) not in repr(body)
