"""The day view in a real browser (headless Chromium, tests/support/browser.py): a busy evening
at the sample restaurant, loaded from a running worker; each confirmed booking's bar must
sit on its table's row at its time as Chromium lays the page out. A screenshot of it is
saved under tests/artifacts/ (docs/images/day-view.png is one of these)."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from producers.restaurants import load_file
from seatflow.cli import SAMPLE_RESTAURANT
from seatflow.demo import script
from tests.integration.conftest import Harness
from tests.support.browser import chromium, ensure_chromium, full_page_screenshot
from tests.support.dayview import x_at

pytestmark = pytest.mark.integration

DAY = date(2031, 12, 12)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# Layout rounding between SVG user units and CSS pixels.
TOLERANCE_PX = 1.5


def box(element: Any) -> tuple[float, float, float, float]:
    r = element.rect
    return r["x"], r["y"], r["width"], r["height"]


def tick_x(driver: Any) -> dict[int, float]:
    from selenium.webdriver.common.by import By

    return {int(t.get_attribute("data-minute")): box(t)[0]
            for t in driver.find_elements(By.CSS_SELECTOR, "svg line.tick")}


async def busy_evening(h: Harness) -> tuple[str, dict[str, dict[str, Any]]]:
    """The sample restaurant under an id of its own, and the demo's evening on DAY, decided."""
    [sample] = load_file(SAMPLE_RESTAURANT)
    rid = h.ids("ember")
    await h.publish_restaurant(sample.model_copy(update={"restaurant_id": rid}))
    steps = script(rid, DAY, h.tag)
    await h.publish(*(change for _, change in steps))
    ids = list(dict.fromkeys(change.booking.booking_id for _, change in steps))
    await h.changes_applied(*ids)
    await h.allocations_decided(rid)
    seen = {bid: h.booking(bid) for bid in ids}
    return rid, {bid: b for bid, b in seen.items() if b is not None}


async def test_each_confirmed_bar_sits_on_its_tables_row_at_its_time(
    prompt_harness: Harness,
) -> None:
    await asyncio.to_thread(ensure_chromium)  # apt-get where it is missing (CI: root)
    h = prompt_harness
    rid, bookings = await busy_evening(h)
    confirmed = {bid: b for bid, b in bookings.items() if b["status"] == "confirmed"}
    pending = {bid for bid, b in bookings.items() if b["status"] == "pending"}
    assert len(confirmed) >= 10 and pending, bookings  # a busy evening, and someone waits
    url = f"{h.worker.base_url}/restaurants/{rid}/days/{DAY.isoformat()}"

    def look() -> tuple[dict, dict, dict, set[str], Path]:
        from selenium.webdriver.common.by import By

        with chromium() as driver:
            driver.get(url)
            assert driver.title.startswith("Ember & Oak"), driver.title
            rows = {g.get_attribute("data-table-id"):
                    box(g.find_element(By.CSS_SELECTOR, "rect.row-bg"))
                    for g in driver.find_elements(By.CSS_SELECTOR, "svg g.table-row")}
            bars = {}
            for a in driver.find_elements(By.CSS_SELECTOR, "svg a.booking"):
                key = (a.get_attribute("data-booking-id"), a.get_attribute("data-table-id"))
                bars[key] = (box(a.find_element(By.CSS_SELECTOR, "rect.bar")),
                             int(a.get_attribute("data-start-minute")),
                             a.get_dom_attribute("href"))
            listed = {li.get_attribute("data-booking-id") for li in
                      driver.find_elements(By.CSS_SELECTOR, "aside.pending li.pending-booking")}
            shot = full_page_screenshot(driver, ARTIFACTS / f"day-view-{h.tag}.png")
            return rows, bars, tick_x(driver), listed, shot

    rows, bars, ticks, listed, shot = await asyncio.to_thread(look)

    assert set(bars) == {(bid, t) for bid, b in confirmed.items() for t in b["table_ids"]}
    for (bid, table), ((x, y, width, height), start_minute, href) in bars.items():
        booking = confirmed[bid]
        hours, minutes = map(int, booking["start_time"].split(":"))
        assert start_minute == hours * 60 + minutes
        row_x, row_y, row_width, row_height = rows[table]
        assert row_y - TOLERANCE_PX <= y and y + height <= row_y + row_height + TOLERANCE_PX, \
            (bid, table)
        assert x == pytest.approx(x_at(ticks, start_minute), abs=TOLERANCE_PX), (bid, table)
        assert width > 0
        assert href.endswith(f"/bookings/{bid}")
    assert listed == pending
    assert shot.stat().st_size > 10_000
