"""HTTP endpoints (docs/interface.md §6): /health, /metrics, /bookings/{booking_id}."""

from __future__ import annotations

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.runtime import Runtime

# Booking ids are at most this long (models.events.BookingPayload).
MAX_BOOKING_ID = 200


def _possible_id(booking_id: str) -> bool:
    """An id a booking could have: short, no NUL, valid Unicode. Anything else is a 404
    without asking the database (which would refuse the text with a 5xx)."""
    if not booking_id or len(booking_id) > MAX_BOOKING_ID or "\x00" in booking_id:
        return False
    try:
        booking_id.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def booking_view(rt: Runtime, booking_id: str) -> dict | None:
    if not _possible_id(booking_id):
        return None
    async with (await rt.database()).transaction() as uow:
        view = await uow.bookings.view(booking_id)
        if view is None:
            return None
        mails = await uow.notifications.of_booking(booking_id)
    view["booking_version"] = view.pop("version")
    for k in ("booking_date", "updated_at"):
        view[k] = view[k].isoformat()
    for k in ("start_time", "end_time"):
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
