"""How the `seatflow` commands that read a booking ask the worker's HTTP API
(docs/interface.md §6, §8): at SEATFLOW_API_URL (default
`http://127.0.0.1:<SEATFLOW_WEB_PORT>`), with `Authorization: Bearer <SEATFLOW_API_TOKEN>`
when a token is set (the same setting the worker checks).

Plain urllib: a command that reads one booking should not start an event loop or pull in
an HTTP client library. Every failure is an `ApiError` with one line that names the API
and what to do (never the token), and the exit code that goes with it.
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
    """A one-line message for the operator (it never quotes the token), and the exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def api_base_url(settings: Settings) -> str:
    """The API's base URL without a trailing slash; ApiError (exit 2) when it is no URL."""
    url = (settings.api_url or f"http://127.0.0.1:{settings.web_port}").rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(f"SEATFLOW_API_URL must be an http:// or https:// URL, got {url!r}",
                       EXIT_USAGE)
    return url


def api_headers(settings: Settings) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    return headers


def booking_path(booking_id: str) -> str:
    return f"/bookings/{quote(booking_id, safe='')}"


def day_path(restaurant_id: str, day: str) -> str:
    return f"/restaurants/{quote(restaurant_id, safe='')}/days/{day}"


def get(settings: Settings, path: str, *, timeout_s: float = TIMEOUT_S) -> tuple[int, bytes]:
    """GET `path` (already quoted) of the API: (status, body) for any HTTP answer; ApiError
    when there is none (refused, timed out, not HTTP), or when the API refuses the token."""
    base = api_base_url(settings)
    request = urllib.request.Request(base + path, headers=api_headers(settings))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, socket.timeout | TimeoutError):
            reason = f"no answer in {timeout_s:.0f} s"
        raise ApiError(f"API: cannot reach {base} ({reason}) — is a worker running "
                       "(`seatflow dev`), or SEATFLOW_API_URL set to one?") from exc
    if status == 401:
        which = "is not the worker's" if settings.api_token else "is unset"
        raise ApiError(f"API: {base} answered 401: SEATFLOW_API_TOKEN {which}")
    return status, body


def _json(settings: Settings, status: int, body: bytes, path: str) -> tuple[int, Any]:
    if status not in (200, 404):
        raise ApiError(f"API: {api_base_url(settings)} answered {status}")
    try:
        return status, json.loads(body or b"null")
    except ValueError as exc:
        raise ApiError(f"API: {api_base_url(settings)} answered no JSON for {path}") from exc


def get_json(settings: Settings, path: str, *, timeout_s: float = TIMEOUT_S) -> tuple[int, Any]:
    """GET `path` (e.g. `/bookings/b-1`, quoted here): (status, JSON body) for 200 and 404;
    ApiError for anything else, naming the setting to look at."""
    quoted = quote(path, safe="/")
    return _json(settings, *get(settings, quoted, timeout_s=timeout_s), quoted)


def get_booking(settings: Settings, booking_id: str) -> dict[str, Any] | None:
    """The booking as `GET /bookings/{id}` has it, or None when the API does not know it."""
    path = booking_path(booking_id)
    status, view = _json(settings, *get(settings, path), path)
    if status == 404:
        return None
    if not isinstance(view, dict):
        raise ApiError(f"API: GET {path} answered no JSON object")
    return view
