"""What a worker really publishes matches the committed schemas (docs/schemas, issue #15).

One booking life drives every kind of output: create, realign, cancel, a move
(`booking.tables_changed`), used-up retries (`booking.allocation_failed`), emails, a dead
letter. Then every record on every topic of the worker is validated with `jsonschema`
against its schema: the outputs (also those of other tests on the same session worker),
the internal allocation requests, and the inputs this test published.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from config.topics import Topic
from models.restaurant import RestaurantConfig
from producers.publisher import Publisher, make_cancel, make_change
from seatflow.schemas import CHANNELS
from tests.integration.conftest import Harness
from tests.support.kafka import read_topic
from tests.support.schemas import problems

pytestmark = pytest.mark.integration
DAY = "2032-03-09"
MESSAGE = {channel.topic: channel.message for channel in CHANNELS}
OUTPUTS = (Topic.BOOKING_STATUS, Topic.NOTIFICATIONS, Topic.OPS_EVENTS,
           Topic.ALLOCATION_REQUESTS)


def created(h: Harness, name: str, start: str, end: str, party: int, rid: str) -> Any:
    return make_change("booking.created", h.ids(name), rid, booking_date=DAY, start_time=start,
                       end_time=end, party_size=party, customer_name=name.title(),
                       customer_email=f"{name}@guest.example")


def key_of(record: Any) -> str | None:
    return record.key.decode() if record.key is not None else None


def statuses(values: list[dict[str, Any]]) -> list[str]:
    return [v["type"] for v in values]


async def test_every_published_record_matches_its_schema(harness: Harness) -> None:
    h = harness
    rid = h.ids("r-schema")
    # A two-top and a four-top, not adjacent: a couple on the four-top must move for a party
    # of four, and a party of six never fits.
    await h.publish_restaurant(RestaurantConfig.model_validate({
        "restaurant_id": rid, "name": "Schema", "slug": rid, "timezone": "Europe/London",
        "contact_email": "host@schema.example",
        "tables": [{"table_id": "a", "capacity": 2, "max_party": 2},
                   {"table_id": "b", "capacity": 4, "max_party": 4}],
        "services": [{"name": "dinner", "start": "17:00", "end": "23:00",
                      "allow_overrun": True}],
    }))
    early, couple, four, six = (h.ids(n) for n in ("early", "couple", "four", "six"))

    def has(*types: str):  # type: ignore[no-untyped-def]
        return lambda values: set(types) <= set(statuses(values))

    await h.publish(created(h, "early", "18:00", "19:00", 2, rid))
    await h.wait_topic("booking_status", early, has("booking.confirmed"))
    await h.publish(created(h, "couple", "18:30", "19:30", 2, rid))
    await h.wait_topic("booking_status", couple, has("booking.confirmed"))
    # Realign (a new time), then cancel: the two-top is free again.
    await h.publish(make_change("booking.updated", early, rid, booking_date=DAY,
                                start_time="18:05", end_time="19:00", party_size=2,
                                customer_name="Early"), make_cancel(early, rid))
    await h.wait_topic("booking_status", early, has("booking.cancelled"))
    await h.publish(created(h, "four", "19:00", "20:00", 4, rid))
    await h.wait_topic("booking_status", couple, has("booking.tables_changed"))
    await h.publish(created(h, "six", "19:00", "20:00", 6, rid))
    await h.wait_topic("booking_status", six, has("booking.allocation_failed"))
    async with Publisher(h.settings) as pub:
        await pub.publish_raw(h.worker.topics.booking_changes, h.ids("bad").encode(),
                              b'{"schema_version": 1, "type": "booking.created"')
    await h.wait_topic("ops_events", h.ids("bad"),
                       lambda vs: any(v["event_type"] == "dead_letter.published" for v in vs))
    await h.settle(early, couple, four, six, restaurant_id=rid, emails=True)

    ours = {early, couple, four, six}
    bootstrap = h.settings.kafka_bootstrap
    seen: dict[Topic, int] = {}
    for topic in OUTPUTS:
        records = await read_topic(bootstrap, h.worker.topics.name(topic), min_count=1)
        values = [json.loads(r.value) for r in records]
        for value in values:
            assert problems(MESSAGE[topic], value) == [], value
        seen[topic] = sum(1 for v in values if ours & {v.get("booking_id")}
                          or v.get("restaurant_id") == rid)
    assert all(seen.values()), f"a topic got nothing from this booking life: {seen}"

    status = [json.loads(r.value) for r in await read_topic(
        bootstrap, h.worker.topics.booking_status) if key_of(r) in ours]
    assert {"booking.pending", "booking.confirmed", "booking.cancelled",
            "booking.tables_changed", "booking.allocation_failed"} <= set(statuses(status))
    kinds = {json.loads(r.value)["kind"] for r in await read_topic(
        bootstrap, h.worker.topics.notifications) if key_of(r) in ours}
    assert {"confirmed", "cancelled", "allocation_failed"} <= kinds, kinds

    dead = await read_topic(bootstrap, h.worker.topics.dead_letters, min_count=1)
    assert any(r.key == h.ids("bad").encode() for r in dead)
    for record in dead:
        headers = {name: value.decode() for name, value in record.headers}
        assert problems(MESSAGE[Topic.DEAD_LETTERS], headers) == [], headers

    # The inputs this test published (not the broken one) are valid input messages too.
    for topic, keys in ((Topic.RESTAURANTS, {rid}), (Topic.BOOKING_CHANGES, ours)):
        mine = [json.loads(r.value) for r in await read_topic(
            bootstrap, h.worker.topics.name(topic), min_count=1) if key_of(r) in keys]
        assert mine
        for value in mine:
            assert problems(MESSAGE[topic], value) == [], value
