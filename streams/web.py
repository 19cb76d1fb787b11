"""HTTP endpoints (docs/interface.md §6): /health, /metrics, /bookings/{booking_id}, and the
day view /restaurants/{restaurant_id}/days/{YYYY-MM-DD} (streams/dayview.py).

With SEATFLOW_API_TOKEN set, every path but /health and /metrics (Faust's own pages and
unknown paths included) answers 401 without `Authorization: Bearer <token>`. No request
sees a traceback: a failure is a bare 500."""

from __future__ import annotations

import hmac
import logging

import faust
from aiohttp import web as aiohttp_web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.settings import is_loopback
from streams import dayview
from streams.runtime import Runtime

log = logging.getLogger(__name__)

# For probes and scrapers; they show no guest's data.
OPEN_PATHS = frozenset({"/health", "/metrics"})


def bearer_token_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries `Bearer <token>`, compared in constant time
    (the scheme is case-insensitive, RFC 9110)."""
    if not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Bytes: compare_digest refuses non-ASCII str, and a header may hold anything.
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode())


def access_guard(token: str | None):  # type: ignore[no-untyped-def]
    """aiohttp middleware: the token check, and no traceback for anyone."""

    @aiohttp_web.middleware
    async def guard(request, handler):  # type: ignore[no-untyped-def]
        if (token is not None and request.path not in OPEN_PATHS
                and not bearer_token_matches(request.headers.get("Authorization"), token)):
            return aiohttp_web.json_response(
                {"error": "unauthorized"}, status=401,
                headers={"WWW-Authenticate": 'Bearer realm="seatflow"'})
        try:
            return await handler(request)
        except aiohttp_web.HTTPException:
            raise  # 404, 405, ...: aiohttp's own short answers
        except Exception as exc:  # noqa: BLE001 - answered, and logged without the request
            log.error("HTTP %s %s failed: %s", request.method,
                      request.match_info.route.resource.canonical
                      if request.match_info.route.resource else "?", type(exc).__name__)
            return aiohttp_web.json_response({"error": "internal_error"}, status=500)

    return guard


async def booking_view(rt: Runtime, booking_id: str) -> dict | None:
    if not dayview.possible_id(booking_id):
        return None
    async with (await rt.database()).transaction() as uow:
        view = await uow.bookings.view(booking_id)
        if view is None:
            return None
        mails = await uow.notifications.of_booking(booking_id)
    view["booking_version"] = view.pop("version")
    for k in ("booking_date", "updated_at"):
        view[k] = view[k].isoformat()
    for k in ("start_time", "end_time", "requested_end_time"):
        view[k] = view[k].strftime("%H:%M") if view[k] is not None else None
    view["emails"] = [
        {
            **m,
            "due_at": m["due_at"].isoformat(),
            "sent_at": m["sent_at"].isoformat() if m["sent_at"] else None,
        }
        for m in mails
    ]
    return view


def register(app: faust.App, rt: Runtime) -> None:
    settings = rt.settings
    token = settings.api_token.get_secret_value() if settings.api_token else None
    app.web.web_app.middlewares.append(access_guard(token))  # before the server freezes it
    if token is None and not is_loopback(settings.web_bind):
        log.warning("HTTP API on %s without a token (SEATFLOW_API_OPEN=true): guests' data "
                    "is protected only by what is in front of this port", settings.web_bind)

    async def broker_check() -> None:
        # A real metadata round trip, not the client's cache.
        producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
        ok = await producer.client.force_metadata_update()
        if not ok:
            raise ConnectionError("broker metadata request failed")

    @app.page("/health")
    async def health(self, request):  # type: ignore[no-untyped-def]
        status = await rt.check_health(broker_check)
        return self.json(status, status=200 if status["status"] == "ok" else 503)

    @app.page("/metrics")
    async def metrics(self, request):  # type: ignore[no-untyped-def]
        # aiohttp wants the charset apart from the content type.
        content_type = CONTENT_TYPE_LATEST.split(";")[0]  # "text/plain"
        return self.text(
            generate_latest(rt.metrics.registry).decode(),
            content_type=f"{content_type}; version=0.0.4",
        )

    @app.page("/bookings/{booking_id}")
    async def booking(self, request, booking_id):  # type: ignore[no-untyped-def]
        view = await booking_view(rt, booking_id)
        if view is None:
            return self.json({"error": "not_found", "booking_id": booking_id}, status=404)
        return self.json(view)

    @app.page("/restaurants/{restaurant_id}/days/{day}")
    async def day(self, request, restaurant_id, day):  # type: ignore[no-untyped-def]
        status, page = await dayview.day_page(await rt.database(), restaurant_id, day)
        return self.html(page, status=status)
