"""Who may read a guest's data over HTTP (docs/interface.md §6, docs/deployment.md
"Personal data"), on real `seatflow worker` processes: the API token, the default bind, and
the refusal to serve the network without either a token or an explicit opt-out."""

from __future__ import annotations

import secrets
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from config.settings import Settings
from devstack import free_port
from seatflow.api import ApiError, get_json
from tests.integration.conftest import Harness, restaurant
from tests.integration.test_lifecycle import created
from tests.support.privacy import listening_addresses, other_local_address
from tests.support.workers import REPO_ROOT, SEATFLOW_BIN, WorkerProcess, settings_env


def http_get(worker: WorkerProcess, path: str, authorization: str | None = None
             ) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    request = urllib.request.Request(worker.base_url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


async def test_the_token_guards_every_endpoint_but_health_and_metrics(
    start_worker: Callable[..., WorkerProcess], stack: Any,
) -> None:
    token = secrets.token_urlsafe(24)
    # No SEATFLOW_WEB_HOST: with a token the worker serves every interface.
    worker = start_worker(api_token=SecretStr(token), web_host=None)
    h = Harness(worker, stack)  # its reads send the token
    rid, bid = h.ids("r"), h.ids("b")
    await h.publish(restaurant(rid), created(h, bid, rid))
    await h.wait_booking(bid, lambda b: b["status"] == "confirmed")
    guest = f"{bid}@guest.example"

    for authorization in (None, "", "Bearer", f"Bearer {token[:-1]}", f"Bearer {token}x",
                          f"Basic {token}", f"Token {token}", "Bearer " + "x" * 4000):
        status, body, headers = http_get(worker, f"/bookings/{bid}", authorization)
        assert status == 401, (authorization, status)
        assert guest.encode() not in body and headers["WWW-Authenticate"].startswith("Bearer")
    for path in ("/", "/router/", "/table/", "/stats/", "/graph/", "/nope",
                 "/bookings/no-such-booking", "/restaurants/r/days/2030-06-14"):
        assert http_get(worker, path)[0] == 401, path

    status, body, _ = http_get(worker, f"/bookings/{bid}", f"Bearer {token}")
    assert status == 200 and guest.encode() in body
    assert http_get(worker, f"/bookings/{bid}", f"bearer {token}")[0] == 200
    assert http_get(worker, "/bookings/no-such-booking", f"Bearer {token}")[0] == 404
    assert http_get(worker, "/health")[0] == 200
    assert http_get(worker, "/metrics")[0] == 200

    # The commands that read the API send the token from the same setting.
    assert get_json(worker.settings, f"/bookings/{bid}")[1]["customer_email"] == guest
    wrong = worker.settings.model_copy(update={"api_token": SecretStr("w" * 32)})
    with pytest.raises(ApiError, match="SEATFLOW_API_TOKEN") as refused:
        get_json(wrong, f"/bookings/{bid}")
    assert "w" * 32 not in str(refused.value)
    with pytest.raises(ApiError, match="SEATFLOW_API_TOKEN is unset"):
        get_json(worker.settings.model_copy(update={"api_token": None}), f"/bookings/{bid}")

    assert listening_addresses(worker.settings.web_port) == {"0.0.0.0"}


def test_without_a_token_the_worker_listens_on_loopback_only(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker(web_host=None)  # the default bind
    port = worker.settings.web_port
    assert worker.settings.api_token is None
    assert listening_addresses(port) == {"127.0.0.1"}
    assert http_get(worker, "/bookings/no-such-booking")[0] == 404  # open, on loopback
    other = other_local_address()
    if other is not None:  # this host's own address in its network: nobody answers there
        with pytest.raises(OSError), socket.create_connection((other, port), timeout=2):
            pass


def test_a_wide_bind_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings().model_copy(update={
        "web_host": "0.0.0.0", "web_port": port, "home": tmp_path,
        # Nothing runs here: the refusal must come before any connection is tried.
        "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        "database_url": f"postgresql://nobody@127.0.0.1:{free_port()}/none",
    })
    done = subprocess.run([str(SEATFLOW_BIN), "worker"], env=settings_env(settings),
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    message = done.stderr.strip()
    assert "SEATFLOW_WEB_HOST=0.0.0.0" in message and "SEATFLOW_API_TOKEN" in message
    assert "SEATFLOW_API_OPEN" in message
    assert "Traceback" not in done.stderr + done.stdout
    assert listening_addresses(port) == set()


async def test_api_open_serves_a_wide_bind_without_a_token_and_says_so(
    start_worker: Callable[..., WorkerProcess], stack: Any,
) -> None:
    worker = start_worker(web_host="0.0.0.0", api_open=True)
    assert listening_addresses(worker.settings.web_port) == {"0.0.0.0"}
    h = Harness(worker, stack)
    rid, bid = h.ids("r"), h.ids("b")
    await h.publish(restaurant(rid), created(h, bid, rid))
    await h.wait_booking(bid, lambda b: b["status"] == "confirmed")
    assert http_get(worker, f"/bookings/{bid}")[0] == 200  # no token asked: the proxy's job
    assert "without a token (SEATFLOW_API_OPEN=true)" in worker.log_path.read_text()
