"""The one place that names topics (docs/interface.md §1).

`Topic` names each topic by its suffix; `TopicNames(prefix)` gives the full name every
client uses, so the prefix is applied in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Topic(StrEnum):
    RESTAURANTS = "restaurants"
    BOOKING_CHANGES = "booking-changes"
    BOOKING_STATUS = "booking-status"
    NOTIFICATIONS = "notifications"
    OPS_EVENTS = "ops-events"
    DEAD_LETTERS = "dead-letters"
    # Internal: allocation work, keyed by restaurant so one writer decides per restaurant.
    ALLOCATION_REQUESTS = "allocation-requests"


# Consumed by workers, in the order they are declared.
INPUTS = (Topic.RESTAURANTS, Topic.BOOKING_CHANGES, Topic.ALLOCATION_REQUESTS)
# The latest record per key wins.
COMPACTED = frozenset({Topic.RESTAURANTS})


@dataclass(frozen=True)
class TopicNames:
    prefix: str

    def name(self, topic: Topic) -> str:
        return f"{self.prefix}{topic.value}"

    @property
    def restaurants(self) -> str:
        return self.name(Topic.RESTAURANTS)

    @property
    def booking_changes(self) -> str:
        return self.name(Topic.BOOKING_CHANGES)

    @property
    def booking_status(self) -> str:
        return self.name(Topic.BOOKING_STATUS)

    @property
    def notifications(self) -> str:
        return self.name(Topic.NOTIFICATIONS)

    @property
    def ops_events(self) -> str:
        return self.name(Topic.OPS_EVENTS)

    @property
    def dead_letters(self) -> str:
        return self.name(Topic.DEAD_LETTERS)

    @property
    def allocation_requests(self) -> str:
        return self.name(Topic.ALLOCATION_REQUESTS)

    def inputs(self) -> list[str]:
        return [self.name(t) for t in INPUTS]

    def all(self) -> list[str]:
        return [self.name(t) for t in Topic]

    def compacted(self) -> set[str]:
        return {self.name(t) for t in COMPACTED}
