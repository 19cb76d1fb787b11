"""The one place that names topics (CONTRACT §1). Every name carries the configured prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicNames:
    prefix: str

    @property
    def restaurants(self) -> str:
        return f"{self.prefix}restaurants"

    @property
    def booking_changes(self) -> str:
        return f"{self.prefix}booking-changes"

    @property
    def booking_status(self) -> str:
        return f"{self.prefix}booking-status"

    @property
    def notifications(self) -> str:
        return f"{self.prefix}notifications"

    @property
    def ops_events(self) -> str:
        return f"{self.prefix}ops-events"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}dead-letters"

    # Internal: allocation work, keyed by restaurant so one writer decides per restaurant.
    @property
    def allocation_requests(self) -> str:
        return f"{self.prefix}allocation-requests"

    def inputs(self) -> list[str]:
        return [self.restaurants, self.booking_changes, self.allocation_requests]

    def all(self) -> list[str]:
        return [
            self.restaurants,
            self.booking_changes,
            self.booking_status,
            self.notifications,
            self.ops_events,
            self.dead_letters,
            self.allocation_requests,
        ]

    def compacted(self) -> set[str]:
        return {self.restaurants}
