"""`GET /restaurants/{restaurant_id}/days/{YYYY-MM-DD}` (docs/interface.md §6) from a running
worker: what the page draws is what PostgreSQL holds."""

from __future__ import annotations

import asyncio
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from producers.publisher import make_change
from tests.integration.conftest import Harness, restaurant
from tests.support.dayview import bars, rect, rows, svg_of, ticks, x_at
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.integration

DAY = date(2031, 12, 7)


def fetch(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


async def get_day(h: Harness, rid: str, day: date | str) -> tuple[int, str, str]:
    text = day.isoformat() if isinstance(day, date) else day
    return await asyncio.to_thread(fetch, f"{h.worker.base_url}/restaurants/{rid}/days/{text}")


def created(bid: str, rid: str, start: str, party: int, end: str | None = None,
            day: date = DAY):  # type: ignore[no-untyped-def]
    return make_change("booking.created", bid, rid, booking_date=day.isoformat(),
                       start_time=start, end_time=end, party_size=party,
                       customer_name=f"Guest {bid}", customer_email=None)


async def test_each_confirmed_booking_is_drawn_on_its_tables_at_its_times(
    prompt_harness: Harness,
) -> None:
    h = prompt_harness
    rid, other = h.ids("r"), h.ids("other")
    late_service = [{"name": "dinner", "start": "17:00", "end": "02:00", "allow_overrun": True}]
    await h.publish_restaurant(restaurant(rid, tables=4, services=late_service))
    await h.publish_restaurant(restaurant(other, tables=2))
    two, four, late, huge = h.ids("two"), h.ids("four"), h.ids("late"), h.ids("huge")
    elsewhere = h.ids("elsewhere")
    await h.publish(created(two, rid, "19:00", 2), created(four, rid, "19:00", 4),
                    created(late, rid, "23:30", 2, end="01:00"), created(huge, rid, "20:00", 40),
                    created(elsewhere, other, "19:00", 2))
    seated = {}
    for bid in (two, four, late):
        seated[bid] = await h.wait_booking(bid, lambda b: b["status"] == "confirmed")
    await h.wait_booking(huge, lambda b: b["attempts"] >= 1)
    await h.wait_booking(elsewhere, lambda b: b["status"] == "confirmed")

    status, content_type, page = await get_day(h, rid, DAY)

    assert status == 200, page
    assert content_type.startswith("text/html")
    svg = svg_of(page)
    drawn = {(a.get("data-booking-id"), a.get("data-table-id")): a for a in bars(svg)}
    assert set(drawn) == {(bid, t) for bid, b in seated.items() for t in b["table_ids"]}
    row_span, tick_x = rows(svg), ticks(svg)
    for (bid, table), bar in drawn.items():
        booking = seated[bid]
        x, y, width, height = rect(bar, "bar")
        top, bottom = row_span[str(table)]
        assert top <= y and y + height <= bottom
        hours, minutes = map(int, booking["start_time"].split(":"))
        assert x == pytest.approx(x_at(tick_x, hours * 60 + minutes), abs=0.2)
        assert bar.get("href") == f"/bookings/{bid}"
        assert bar.get("data-party") == str(booking["party_size"])
    assert {a.get("data-end-minute") for a in bars(svg) if a.get("data-booking-id") == late} \
        == {str(25 * 60)}  # 01:00 the next morning, on the day it starts
    aside = page[page.index('<aside class="pending">'):]
    assert f'data-booking-id="{huge}"' in aside and "party of 40" in aside
    assert elsewhere not in page

    _, _, next_day = await get_day(h, rid, DAY + timedelta(days=1))
    assert late not in next_day


async def test_an_unknown_restaurant_is_404_and_a_bad_date_400(prompt_harness: Harness) -> None:
    h = prompt_harness
    rid = h.ids("r")
    await h.publish_restaurant(restaurant(rid))

    assert (await get_day(h, h.ids("nowhere"), DAY))[0] == 404
    for bad in ("2031-02-30", "tomorrow", "20311207", "2031-12-07%00"):
        status, _, body = await get_day(h, rid, bad)
        assert status == 400, (bad, body)
        assert "YYYY-MM-DD" in body
    assert (await get_day(h, "%00" * 3, DAY))[0] == 404
    assert (await get_day(h, "x" * 300, DAY))[0] == 404
    assert (await get_day(h, rid, DAY))[0] == 200


async def test_the_day_view_is_behind_the_api_token(
    start_worker: Callable[..., WorkerProcess], stack: Any,
) -> None:
    token = secrets.token_urlsafe(24)
    worker = await asyncio.to_thread(start_worker, api_token=SecretStr(token))
    h = Harness(worker, stack)
    rid, bid = h.ids("r"), h.ids("b")
    await h.publish_restaurant(restaurant(rid))
    await h.publish(created(bid, rid, "19:00", 2))
    await h.wait_booking(bid, lambda b: b["status"] == "confirmed")
    url = f"{worker.base_url}/restaurants/{rid}/days/{DAY.isoformat()}"

    def get(authorization: str | None) -> tuple[int, str]:
        headers = {"Authorization": authorization} if authorization else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                        timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    for authorization in (None, "Bearer wrong-token-of-some-length", f"Basic {token}"):
        status, body = await asyncio.to_thread(get, authorization)
        assert status == 401 and bid not in body
    status, body = await asyncio.to_thread(get, f"Bearer {token}")
    assert status == 200 and f'data-booking-id="{bid}"' in body
