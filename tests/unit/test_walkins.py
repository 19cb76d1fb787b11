"""Ops walk-ins (docs/interface.md §4 "Ops walk-ins"): slug, synthetic identity, contact resolution."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.lifecycle import apply_change
from domain.walkins import ResolvedContact, is_synthetic, resolve_contact, walkin_slug
from models.restaurant import RestaurantConfig
from producers.publisher import make_change

RESTAURANT_EMAIL = "hello@ember.example"
SLUG_CHARS = set(string.ascii_lowercase + string.digits)
BLANKS = [None, "", "   ", "\t\n"]


def contract_slug(basis: str) -> str:
    """docs/interface.md §4, literally: lowercased, every character outside [a-z0-9] removed, cut to 24."""
    return "".join(c for c in basis.lower() if c in SLUG_CHARS)[:24]


def walkin(
    *,
    email: str | None = None,
    phone: str | None = None,
    key: str | None = "Req-7F3A",
    booking_id: str = "b-1001",
    restaurant_email: str | None = RESTAURANT_EMAIL,
    source: str = "ops",
) -> ResolvedContact:
    return resolve_contact(
        source=source,
        customer_email=email,
        customer_phone=phone,
        idempotency_key=key,
        booking_id=booking_id,
        restaurant_contact_email=restaurant_email,
    )


# --- slug --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "booking_id", "slug"),
    [
        ("Req-7F3A", "b-1001", "req7f3a"),
        (None, "B_1001", "b1001"),
        ("", "b-1001", "b1001"),
        ("   ", "b-1001", "b1001"),  # a blank key is no key
        ("walk-in @ bar #12, table: 7!", "b-1", "walkinbar12table7"),
        ("ÄÖÜ-x.y", "b-1", "xy"),  # lowercased non-ASCII letters are still outside [a-z0-9]
        ("A" * 30 + "b", "b-1", "a" * 24),
    ],
)
def test_slug_examples(key: str | None, booking_id: str, slug: str) -> None:
    assert walkin_slug(key, booking_id) == slug


@given(key=st.one_of(st.none(), st.text(max_size=60)), booking_id=st.text(min_size=1, max_size=60))
def test_slug_follows_the_contract(key: str | None, booking_id: str) -> None:
    slug = walkin_slug(key, booking_id)
    assert re.fullmatch(r"[a-z0-9]{0,24}", slug)
    basis = key if key and key.strip() else booking_id
    assert slug == contract_slug(basis)


@given(
    key=st.text(alphabet=string.printable, min_size=1, max_size=60).filter(str.strip),
    one=st.text(min_size=1, max_size=20),
    other=st.text(min_size=1, max_size=20),
)
def test_key_wins_over_booking_id_and_case_does_not_matter(key: str, one: str, other: str) -> None:
    assert walkin_slug(key, one) == walkin_slug(key, other)
    assert walkin_slug(key.upper(), one) == walkin_slug(key.lower(), one)


# --- synthetic addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "synthetic"),
    [
        ("walkin+req7f3a@system.local", True),
        (" WALKIN+X@System.Local ", True),
        ("ada@example.com", False),
        ("ada@notsystem.local", False),
        ("system.local@example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_is_synthetic(address: str | None, synthetic: bool) -> None:
    assert is_synthetic(address) is synthetic


# --- contact resolution ------------------------------------------------------------------------


@pytest.mark.parametrize("email", BLANKS)
def test_walkin_without_email_notifies_the_restaurant(email: str | None) -> None:
    contact = walkin(email=email)
    assert contact.notify_email == RESTAURANT_EMAIL
    assert contact.identity_email == "walkin+req7f3a@system.local"
    assert contact.synthetic


def test_walkin_without_key_takes_its_slug_from_the_booking_id() -> None:
    contact = walkin(key=None, booking_id="B-2002", restaurant_email=None)
    assert contact.notify_email == contact.identity_email == "walkin+b2002@system.local"


@pytest.mark.parametrize("restaurant_email", BLANKS)
def test_walkin_without_any_email_gets_the_synthetic_address(
    restaurant_email: str | None,
) -> None:
    contact = walkin(email="", restaurant_email=restaurant_email)
    assert contact.notify_email == "walkin+req7f3a@system.local"
    assert is_synthetic(contact.notify_email)
    assert contact.synthetic


@pytest.mark.parametrize("phone", BLANKS)
def test_walkin_blank_phone_becomes_placeholder(phone: str | None) -> None:
    assert walkin(phone=phone).phone == "000-req7f3a"
    assert walkin(phone=phone, email="ada@example.com").phone == "000-req7f3a"


def test_walkin_phone_given_is_kept() -> None:
    assert walkin(phone="+44 7700 900000").phone == "+44 7700 900000"


def test_walkin_guest_email_is_never_replaced() -> None:
    contact = walkin(email="ada@example.com")
    assert contact == ResolvedContact(
        "ada@example.com", "000-req7f3a", "ada@example.com", synthetic=False
    )


@pytest.mark.parametrize("email", BLANKS)
def test_guest_booking_is_untouched(email: str | None) -> None:
    contact = walkin(source="guest", email=email, phone=None)
    assert contact == ResolvedContact(None, None, None, synthetic=False)


def test_guest_booking_keeps_its_details() -> None:
    contact = walkin(source="guest", email="ada@example.com", phone="+44 7700 900000")
    assert contact == ResolvedContact(
        "ada@example.com", "+44 7700 900000", "ada@example.com", synthetic=False
    )


def test_stored_walkin_carries_the_restaurant_address() -> None:
    change = make_change(
        "booking.created",
        "b-1001",
        "r-ember",
        source="ops",
        channel="ops.walkin",
        idempotency_key="Req-7F3A",
        booking_date="2026-12-01",
        start_time="19:00",
        party_size=2,
        customer_name="Walk-in",
        customer_email="  ",
        customer_phone="",
    )
    contact = walkin(email=change.booking.customer_email, phone=change.booking.customer_phone)
    cfg = RestaurantConfig.model_validate({
        "restaurant_id": "r-ember", "name": "Ember", "slug": "ember",
        "tables": [{"table_id": "t1", "capacity": 2}],
    })
    decision = apply_change(None, change, contact, cfg=cfg, auto_assign=True)

    assert decision.state is not None
    assert decision.state.status == "pending"
    assert decision.state.customer_email == RESTAURANT_EMAIL
    assert decision.state.customer_phone == "000-req7f3a"
