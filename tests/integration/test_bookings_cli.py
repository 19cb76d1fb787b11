"""`seatflow bookings send | update | cancel | show` (docs/interface.md §8) as a person runs
them: subprocesses against a real worker, broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from config.settings import Settings
from devstack import free_port
from tests.integration.conftest import Harness, restaurant
from tests.support.cli import seatflow, seatflow_async
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.integration

DAY = "2031-12-05"


async def send(h: Harness, rid: str, *extra: str, time: str = "19:00", party: str = "2") -> str:
    run = await seatflow_async(h.settings, "bookings", "send", "--restaurant", rid, "--date", DAY,
                               "--time", time, "--party", party, *extra)
    assert run.code == 0, run
    return run.last_line


async def confirmed_booking(h: Harness, *extra: str) -> tuple[str, str, dict]:
    rid = h.ids("r")
    await h.publish_restaurant(restaurant(rid))
    bid = await send(h, rid, "--name", "Ada Lovelace", "--email", "ada@example.com",
                     "--phone", "+44 20 7946 0001", "--notes", "window seat", *extra)
    return rid, bid, await h.wait_booking(bid, lambda b: b["status"] == "confirmed")


async def test_send_publishes_a_booking_the_service_confirms(prompt_harness: Harness) -> None:
    h = prompt_harness
    rid, bid, booking = await confirmed_booking(h)

    assert re.fullmatch(r"b-[0-9a-f]{10}", bid)
    assert (booking["restaurant_id"], booking["booking_date"], booking["start_time"],
            booking["party_size"]) == (rid, DAY, "19:00", 2)
    assert (booking["customer_name"], booking["customer_email"], booking["customer_phone"],
            booking["notes"]) == ("Ada Lovelace", "ada@example.com", "+44 20 7946 0001",
                                  "window seat")
    assert booking["table_ids"]
    [event] = await h.topic_values("booking_changes", key=bid)
    assert (event["type"], event["schema_version"], event["source"]) == (
        "booking.created", 1, "guest")


async def test_a_walk_in_with_a_chosen_id_reaches_the_restaurant(prompt_harness: Harness) -> None:
    h = prompt_harness
    rid, bid = h.ids("r"), h.ids("walk")
    await h.publish_restaurant(restaurant(rid))

    assert await send(h, rid, "--booking-id", bid, "--source", "ops", "--email", "",
                      "--idempotency-key", f"desk-{h.tag}") == bid

    booking = await h.wait_booking(bid, lambda b: b["status"] == "confirmed")
    assert booking["customer_email"] == "host@resto.example"  # the restaurant's contact
    assert booking["source"] == "ops" and booking["channel"] == "ops.walkin"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--party", "0"], "--party"),
        (["--date", "2031-02-30"], "--date"),
        (["--time", "25:00"], "--time"),
        (["--email", "not an address"], "--email"),
        (["--restaurant", ""], "--restaurant"),
        (["--end", "19:00"], "--end"),
    ],
)
async def test_bad_input_is_exit_2_naming_the_flag_and_publishes_nothing(
    prompt_harness: Harness, args: list[str], flag: str
) -> None:
    h = prompt_harness
    bid = h.ids("bad")
    base = {"--restaurant": h.ids("r"), "--date": DAY, "--time": "19:00", "--party": "2"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = [part for item in base.items() for part in item]

    run = await seatflow_async(h.settings, "bookings", "send", "--booking-id", bid, *argv)

    assert run.code == 2, run
    assert flag in run.err and "Traceback" not in run.err
    assert run.out == ""
    assert await h.topic_values("booking_changes", key=bid) == []


def test_a_missing_flag_is_exit_2_naming_it(settings: Settings) -> None:
    run = seatflow(settings, "bookings", "send", "--date", DAY, "--time", "19:00", "--party", "2")
    assert run.code == 2
    assert "--restaurant" in run.err and "Traceback" not in run.err


def test_an_unreachable_broker_is_exit_1_naming_the_broker(settings: Settings) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    run = seatflow(settings, "bookings", "send", "--restaurant", "r", "--date", DAY, "--time",
                   "19:00", "--party", "2", SEATFLOW_KAFKA_BOOTSTRAP=nowhere)
    assert run.code == 1, run
    assert run.err.startswith("broker: ") and nowhere in run.err
    assert "Traceback" not in run.err and run.out == ""


async def test_update_changes_the_given_fields_and_keeps_the_rest(prompt_harness: Harness) -> None:
    h = prompt_harness
    rid, bid, before = await confirmed_booking(h)

    run = await seatflow_async(h.settings, "bookings", "update", bid, "--restaurant", rid,
                               "--time", "20:00", "--party", "1")

    assert run.code == 0, run
    assert run.last_line == bid
    assert "time 19:00 -> 20:00" in run.out and "party 2 -> 1" in run.out
    after = await h.wait_booking(bid, lambda b: b["status"] == "confirmed"
                                 and b["start_time"] == "20:00")
    assert after["party_size"] == 1 and after["pending_ref"] != before["pending_ref"]
    for field in ("booking_date", "customer_name", "customer_email", "customer_phone", "notes"):
        assert after[field] == before[field], field
    created, updated = await h.topic_values("booking_changes", key=bid)
    assert updated["type"] == "booking.updated"
    assert updated["booking"]["customer_email"] == "ada@example.com"
    assert updated["booking"]["end_time"] is None  # the derived end is not a request


@pytest.mark.parametrize("end", [[], ["--end", "21:00"]], ids=["derived-end", "requested-end"])
async def test_a_details_only_update_does_not_realign(prompt_harness: Harness,
                                                      end: list[str]) -> None:
    h = prompt_harness
    rid, bid, before = await confirmed_booking(h, *end)

    run = await seatflow_async(h.settings, "bookings", "update", bid, "--restaurant", rid,
                               "--name", "Ada King")

    assert run.code == 0, run
    await h.changes_applied(bid)
    after = h.booking(bid)
    assert after is not None and after["customer_name"] == "Ada King"
    for field in ("status", "pending_ref", "booking_version", "table_ids", "end_time"):
        assert after[field] == before[field], field


async def test_update_of_an_unknown_booking_is_exit_1(prompt_harness: Harness) -> None:
    h = prompt_harness
    bid = h.ids("nobody")
    run = await seatflow_async(h.settings, "bookings", "update", bid, "--restaurant", "r",
                               "--party", "3")
    assert run.code == 1, run
    assert "not found" in run.err and "Traceback" not in run.err
    assert await h.topic_values("booking_changes", key=bid) == []


async def test_update_with_the_api_unreachable_is_exit_1_naming_the_api(
    prompt_harness: Harness,
) -> None:
    h = prompt_harness
    nowhere = f"http://127.0.0.1:{free_port()}"
    run = await seatflow_async(h.settings, "bookings", "update", h.ids("b"), "--restaurant", "r",
                               "--party", "3", SEATFLOW_API_URL=nowhere)
    assert run.code == 1, run
    assert run.err.startswith("API: cannot reach") and nowhere in run.err
    assert "Traceback" not in run.err


async def test_cancel_releases_the_tables(prompt_harness: Harness) -> None:
    h = prompt_harness
    rid, bid, _ = await confirmed_booking(h)

    run = await seatflow_async(h.settings, "bookings", "cancel", bid, "--restaurant", rid)

    assert run.code == 0, run
    assert run.last_line == bid
    cancelled = await h.wait_booking(bid, lambda b: b["status"] == "cancelled")
    assert cancelled["table_ids"] == []


async def test_show_prints_the_booking_and_json_is_the_api_object(
    prompt_harness: Harness,
) -> None:
    h = prompt_harness
    rid, bid, booking = await confirmed_booking(h)

    text = await seatflow_async(h.settings, "bookings", "show", bid)
    as_json = await seatflow_async(h.settings, "bookings", "show", bid, "--json")

    assert text.code == 0, text
    lines = text.out.splitlines()
    assert lines[0].split() == ["booking", bid, "at", rid]
    assert lines[1].split()[:2] == ["status", "confirmed"]
    assert f"{DAY} 19:00-" in text.out and "party of 2" in text.out
    assert any(line.startswith("tables") and ", ".join(booking["table_ids"]) in line
               for line in lines)
    assert lines[-1].split() == ["day", f"{h.worker.base_url}/restaurants/{rid}/days/{DAY}"]
    assert as_json.code == 0, as_json
    shown = json.loads(as_json.out)
    for field in ("booking_id", "restaurant_id", "status", "pending_ref", "table_ids",
                  "booking_date", "start_time", "end_time", "party_size", "customer_email",
                  "customer_phone", "booking_version"):
        assert shown[field] == booking[field], field
    assert isinstance(shown["emails"], list)


async def test_show_of_an_unknown_booking_is_exit_1(prompt_harness: Harness) -> None:
    h = prompt_harness
    for args in ([], ["--json"]):
        run = await seatflow_async(h.settings, "bookings", "show", h.ids("nobody"), *args)
        assert run.code == 1, run
        assert run.out == "" and "not found" in run.err


async def test_commands_that_read_the_api_send_the_token(
    start_worker: Callable[..., WorkerProcess], stack: Any,
) -> None:
    token = secrets.token_urlsafe(24)
    worker = await asyncio.to_thread(start_worker, api_token=SecretStr(token))
    h = Harness(worker, stack)
    rid, bid, _ = await confirmed_booking(h)

    shown = await seatflow_async(h.settings, "bookings", "show", bid, "--json")
    assert shown.code == 0, shown
    assert json.loads(shown.out)["booking_id"] == bid
    updated = await seatflow_async(h.settings, "bookings", "update", bid, "--restaurant", rid,
                                   "--notes", "by the fire")
    assert updated.code == 0, updated

    wrong = await seatflow_async(h.settings, "bookings", "show", bid,
                                 SEATFLOW_API_TOKEN=secrets.token_urlsafe(24))
    assert wrong.code == 1 and "SEATFLOW_API_TOKEN is not the worker's" in wrong.err
    assert token not in wrong.err
    without = await seatflow_async(h.settings.model_copy(update={"api_token": None}),
                                   "bookings", "update", bid, "--restaurant", rid, "--party", "1")
    assert without.code == 1 and "SEATFLOW_API_TOKEN is unset" in without.err
    await h.changes_applied(bid)
    after = h.booking(bid)
    assert after is not None and after["notes"] == "by the fire" and after["party_size"] == 2
