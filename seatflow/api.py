"""What the `seatflow` commands that read a booking ask the worker's HTTP API
(docs/interface.md §6, §8): `SEATFLOW_API_URL` (default `http://127.0.0.1:<SEATFLOW_WEB_PORT>`),
with `Authorization: Bearer <SEATFLOW_API_TOKEN>` when a token is set.

Plain urllib: a command that reads one booking should not start an event loop or pull in
an HTTP client library. Every failure is an `ApiError` with one line that names the API
and what to do, and the exit code that goes with it.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit

from config.settings import Settings
from seatflow.console import EXIT_FAILED, EXIT_USAGE

TIMEOUT_S = 10.0


class ApiError(Exception):
    """A one-line message for the person at the terminal, and the exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def base_url(settings: Settings) -> str:
    """The API's base URL without a trailing slash; ApiError (exit 2) when it is no URL."""
    url = getattr(settings, "api_url", None) or f"http://127.0.0.1:{settings.web_port}"
    url = str(url).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(f"SEATFLOW_API_URL must be an http:// or https:// URL, got {url!r}",
                       EXIT_USAGE)
    return url


def _token(settings: Settings) -> str | None:
    token = getattr(settings, "api_token", None)
    if token is None:
        return None
    secret = token.get_secret_value() if hasattr(token, "get_secret_value") else str(token)
    return secret or None


def booking_path(booking_id: str) -> str:
    return f"/bookings/{quote(booking_id, safe='')}"


def day_path(restaurant_id: str, day: str) -> str:
    return f"/restaurants/{quote(restaurant_id, safe='')}/days/{day}"


def get(settings: Settings, path: str) -> tuple[int, bytes]:
    """GET `path` of the API: (status, body) for any HTTP answer; ApiError when there is
    none (refused, timed out, not HTTP), or when the API refuses the token (401)."""
    url = base_url(settings) + path
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    token = _token(settings)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, socket.timeout | TimeoutError):
            reason = f"no answer in {TIMEOUT_S:.0f} s"
        raise ApiError(
            f"API: cannot reach {base_url(settings)} ({reason}) — is a worker running "
            "(`seatflow dev`), or SEATFLOW_API_URL set to one?"
        ) from exc
    if status == 401:
        hint = ("the token in SEATFLOW_API_TOKEN was refused" if token
                else "it wants a token: set SEATFLOW_API_TOKEN")
        raise ApiError(f"API: {base_url(settings)} answered 401 Unauthorized — {hint}")
    return status, body


def get_booking(settings: Settings, booking_id: str) -> dict[str, Any] | None:
    """The booking as `GET /bookings/{id}` has it, or None when the API does not know it."""
    status, body = get(settings, booking_path(booking_id))
    if status == 404:
        return None
    if status != 200:
        raise ApiError(f"API: GET {booking_path(booking_id)} answered {status}: "
                       f"{body[:200].decode(errors='replace')}")
    try:
        view = json.loads(body)
    except ValueError as exc:
        raise ApiError(f"API: GET {booking_path(booking_id)} answered no JSON") from exc
    if not isinstance(view, dict):
        raise ApiError(f"API: GET {booking_path(booking_id)} answered no JSON object")
    return view
