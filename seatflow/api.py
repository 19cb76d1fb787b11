"""How the `seatflow` commands that read a booking ask the worker's HTTP API
(docs/interface.md §8): at SEATFLOW_API_URL, with `Authorization: Bearer
<SEATFLOW_API_TOKEN>` when a token is set (the same setting the worker checks)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from config.settings import Settings


class ApiError(Exception):
    """A one-line message for the operator (it never quotes the token)."""


def api_base_url(settings: Settings) -> str:
    return (settings.api_url or f"http://127.0.0.1:{settings.web_port}").rstrip("/")


def api_headers(settings: Settings) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    return headers


def get_json(settings: Settings, path: str, *, timeout_s: float = 10.0) -> tuple[int, Any]:
    """GET `path` (e.g. `/bookings/b-1`): (status, JSON body) for 200 and 404; ApiError for
    anything else, naming the setting to look at."""
    url = api_base_url(settings) + urllib.parse.quote(path, safe="/")
    request = urllib.request.Request(url, headers=api_headers(settings))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return 404, json.loads(exc.read() or b"null")
        if exc.code == 401:
            which = "is not the worker's" if settings.api_token else "is unset"
            raise ApiError(f"API: {api_base_url(settings)} answered 401: SEATFLOW_API_TOKEN "
                           f"{which}") from exc
        raise ApiError(f"API: {api_base_url(settings)} answered {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise ApiError(f"API: cannot reach {api_base_url(settings)} ({type(exc).__name__}) — "
                       "is a worker running, or SEATFLOW_API_URL set?") from exc
