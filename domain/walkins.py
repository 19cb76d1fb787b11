"""Contact details of a booking: ops walk-ins' fallbacks, and what an edit keeps.

Walk-ins (`source: "ops"`) with no email notify the restaurant's contact address, else a
synthetic `walkin+<slug>@system.local` that is never mailed; a blank phone becomes
`000-<slug>`. An edit never erases contact details: a blank email or phone in a
`booking.updated` keeps the stored value, whatever its source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr

SYNTHETIC_DOMAIN = "system.local"
_NOT_SLUG = re.compile(r"[^a-z0-9]")


def walkin_slug(idempotency_key: str | None, booking_id: str) -> str:
    """`idempotency_key` (else booking_id), lowercased, only [a-z0-9], at most 24 chars."""
    basis = idempotency_key if idempotency_key and idempotency_key.strip() else booking_id
    return _NOT_SLUG.sub("", basis.lower())[:24]


def is_synthetic(address: str | None) -> bool:
    """True for a `@system.local` address, bare or as "Name <addr>": never mailed."""
    if not address:
        return False
    _, addr_spec = parseaddr(address)
    candidate = (addr_spec or address).strip().rstrip(".").lower()
    return candidate.endswith("@" + SYNTHETIC_DOMAIN)


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


@dataclass(frozen=True)
class ResolvedContact:
    """What the booking carries (notification address) vs the guest's identity."""

    notify_email: str | None  # where this booking's notifications go
    phone: str | None
    identity_email: str | None  # the customer record's address (synthetic for anonymous walk-ins)
    synthetic: bool


def resolve_contact(
    *,
    source: str,
    customer_email: str | None,
    customer_phone: str | None,
    idempotency_key: str | None,
    booking_id: str,
    restaurant_contact_email: str | None,
    kept_email: str | None = None,
    kept_phone: str | None = None,
) -> ResolvedContact:
    """`kept_email` / `kept_phone`: what the stored booking holds, for an edit (None for a
    new booking); a blank value in the change keeps them. Only an address the change
    itself gives names the guest (`identity_email`); a kept one leaves the customer record
    as it is."""
    given_email = None if _blank(customer_email) else customer_email.strip()
    given_phone = None if _blank(customer_phone) else customer_phone.strip()
    email = given_email if given_email is not None else kept_email
    phone = given_phone if given_phone is not None else kept_phone
    if source != "ops":
        # Guest-provided details are never replaced.
        return ResolvedContact(email, phone, given_email, synthetic=False)
    slug = walkin_slug(idempotency_key, booking_id)
    if phone is None:
        phone = f"000-{slug}"
    if email is not None:
        return ResolvedContact(email, phone, given_email, synthetic=False)
    synthetic_email = f"walkin+{slug}@{SYNTHETIC_DOMAIN}"
    restaurant_email = None if _blank(restaurant_contact_email) else restaurant_contact_email
    notify = restaurant_email.strip() if restaurant_email else synthetic_email
    return ResolvedContact(notify, phone, synthetic_email, synthetic=True)
