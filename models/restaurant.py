"""Restaurant configuration (docs/interface.md §2), validated so a bad record names the bad field."""

from __future__ import annotations

from datetime import time
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.common import HHMM, Text

DEFAULT_TURN_MINUTES: dict[int, int] = {2: 60, 4: 75, 6: 85, 8: 90}


class Table(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    table_id: Text = Field(min_length=1)
    number: Text = ""
    zone: Text = Field("main", min_length=1)
    capacity: int = Field(gt=0)
    min_party: int = Field(1, ge=1)
    max_party: int | None = Field(None, ge=1)
    active: bool = True

    @model_validator(mode="after")
    def _party_bounds(self) -> Self:
        max_party = self.max_party if self.max_party is not None else self.capacity
        if self.min_party > max_party:
            raise ValueError(
                f"min_party ({self.min_party}) must not exceed max_party ({max_party})"
            )
        return self

    @property
    def effective_max_party(self) -> int:
        return self.max_party if self.max_party is not None else self.capacity


class Service(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: Text = Field(min_length=1)
    start: HHMM
    end: HHMM  # earlier than start: the service runs past midnight (a bar's 18:00-02:00)
    allow_overrun: bool = False

    @model_validator(mode="after")
    def _has_length(self) -> Self:
        if self.end == self.start:
            raise ValueError(f"service {self.name!r}: end must differ from start")
        return self

    @property
    def past_midnight(self) -> bool:
        return self.end < self.start

    def contains(self, t: time) -> bool:
        """Whether a booking starting at local time `t` falls in this service (on the
        service's first day before midnight, or on the next day's early hours)."""
        if self.past_midnight:
            return t >= self.start or t < self.end
        return self.start <= t < self.end


class RestaurantConfig(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    restaurant_id: Text = Field(min_length=1)
    name: Text = Field(min_length=1)
    slug: Text = Field(min_length=1)
    timezone: Text = "UTC"
    contact_email: Text | None = None
    contact_phone: Text | None = None
    tables: list[Table] = Field(min_length=1)
    adjacency: list[tuple[Text, Text]] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    turn_minutes: dict[int, int] | None = None
    buffer_after_minutes: int = Field(5, ge=0)
    max_tables_per_booking: int = Field(3, ge=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("turn_minutes")
    @classmethod
    def _positive_turns(cls, value: dict[int, int] | None) -> dict[int, int] | None:
        if value is None:
            return None
        for party, minutes in value.items():
            if party < 1 or minutes < 1:
                raise ValueError(f"party size and minutes must be >= 1, got {party}: {minutes}")
        return dict(sorted(value.items()))

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [t.table_id for t in self.tables]
        seen: set[str] = set()
        for tid in ids:
            if tid in seen:
                raise ValueError(f"tables: duplicate table_id {tid!r}")
            seen.add(tid)
        for i, (a, b) in enumerate(self.adjacency):
            for end in (a, b):
                if end not in seen:
                    raise ValueError(f"adjacency[{i}]: unknown table {end!r}")
            if a == b:
                raise ValueError(f"adjacency[{i}]: a table cannot be adjacent to itself ({a!r})")
        return self

    @property
    def turns(self) -> dict[int, int]:
        return self.turn_minutes or DEFAULT_TURN_MINUTES

    def turn_for(self, party_size: int) -> int:
        """Minutes for a party: the first bracket 'up to N' that holds it, else the largest."""
        turns = self.turns
        for limit in sorted(turns):
            if party_size <= limit:
                return turns[limit]
        return turns[max(turns)]
