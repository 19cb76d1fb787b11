"""`seatflow bookings send | update | cancel | show` (docs/interface.md §8): drive the service
from a terminal, without writing code.

- `send` publishes `booking.created` and prints the booking id on its last line, so
  `id=$(seatflow bookings send … | tail -n 1)` works in a script.
- `update` reads the stored booking from the HTTP API and publishes `booking.updated` with
  the given fields changed and every other field as stored.
- `cancel` publishes `booking.cancelled`.
- `show` prints the booking as `GET /bookings/{id}` has it (`--json`: that object).

Exit codes: 0 done; 1 at run time (broker or API unreachable, booking unknown); 2 bad usage
or bad input, the message naming the flag. Heavy modules (aiokafka) load only when a
command publishes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import uuid
from datetime import date, time, timedelta
from typing import Any, TextIO

from config.settings import Settings
from seatflow import api
from seatflow.console import EXIT_OK, EXIT_USAGE, fail

# customer_name is required by the schema; a person trying the service may not care.
DEFAULT_NAME = "Guest"
# How long publishing may take before the broker counts as unreachable.
PUBLISH_TIMEOUT_S = 30.0
# `--end auto`: no requested end; the service derives it from the restaurant's turn minutes.
END_AUTO = "auto"

# Contract field -> the flag a person types (errors name the flag, not the JSON path).
FLAGS = {
    "booking.booking_id": "--booking-id",
    "booking.restaurant_id": "--restaurant",
    "booking.booking_date": "--date",
    "booking.start_time": "--time",
    "booking.end_time": "--end",
    "booking.party_size": "--party",
    "booking.customer_name": "--name",
    "booking.customer_email": "--email",
    "booking.customer_phone": "--phone",
    "booking.notes": "--notes",
    "idempotency_key": "--idempotency-key",
    "source": "--source",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


# --- flag types: argparse turns an ArgumentTypeError into "argument --flag: message", exit 2


def parse_date(text: str, *, today: date | None = None) -> date:
    """YYYY-MM-DD, or `today` / `tomorrow` (this machine's date) so examples never go stale."""
    today = today or date.today()
    word = text.strip().lower()
    if word == "today":
        return today
    if word == "tomorrow":
        return today + timedelta(days=1)
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text.strip()):
        raise argparse.ArgumentTypeError(
            f"expected a date as YYYY-MM-DD (or today, tomorrow), got {text!r}")
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"no such date: {text!r}") from None


def parse_time(text: str) -> time:
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", text.strip()):
        raise argparse.ArgumentTypeError(f"expected a time as HH:MM (00:00-23:59), got {text!r}")
    hours, minutes = text.strip().split(":")
    return time(int(hours), int(minutes))


def parse_end(text: str) -> time | str:
    """HH:MM (earlier than the start: the booking ends after midnight), or `auto`."""
    if text.strip().lower() == END_AUTO:
        return END_AUTO
    return parse_time(text)


def parse_party(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of guests, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_email(text: str) -> str:
    """An address, or "" (none: a walk-in; an update keeps the stored one)."""
    value = text.strip()
    if value and not _EMAIL.match(value):
        raise argparse.ArgumentTypeError(f"expected an email address like ada@example.com, "
                                         f"got {text!r}")
    return value


# --- parser ------------------------------------------------------------------------------------


def _add_booking_fields(parser: argparse.ArgumentParser, *, required: bool) -> None:
    when = parser.add_argument_group("the booking")
    when.add_argument("--date", type=parse_date, required=required, metavar="YYYY-MM-DD",
                      help="the date it starts on (also: today, tomorrow)")
    when.add_argument("--time", type=parse_time, required=required, metavar="HH:MM",
                      help="start, the restaurant's local time")
    when.add_argument("--party", type=parse_party, required=required, metavar="N",
                      help="number of guests")
    when.add_argument("--end", type=parse_end, metavar="HH:MM",
                      help="end (default: from the restaurant's turn minutes; earlier than "
                           "--time ends after midnight; `auto` drops a requested end)")
    guest = parser.add_argument_group("the guest")
    guest.add_argument("--name", metavar="TEXT",
                       help=f"guest name (default for a new booking: {DEFAULT_NAME})")
    guest.add_argument("--email", type=parse_email, metavar="ADDR",
                       help="where the guest's emails go (none: no guest email)")
    guest.add_argument("--phone", metavar="TEXT")
    guest.add_argument("--notes", metavar="TEXT")
    event = parser.add_argument_group("the event")
    event.add_argument("--source", choices=("guest", "ops"),
                       help="guest (default for a new booking), or ops: a walk-in by staff")
    event.add_argument("--idempotency-key", metavar="K",
                       help="same key + same restaurant = same submission")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`seatflow bookings …` on the top-level parser's subcommands."""
    bookings = commands.add_parser("bookings", help="send, change, cancel and show bookings")
    actions = bookings.add_subparsers(dest="action", required=True, metavar="ACTION")

    send = actions.add_parser(
        "send", help="publish booking.created; prints the booking id on the last line")
    send.add_argument("--restaurant", required=True, metavar="R", help="restaurant id")
    send.add_argument("--booking-id", metavar="ID", help="default: a new id (b-…)")
    _add_booking_fields(send, required=True)
    send.set_defaults(handler=cmd_send)

    update = actions.add_parser(
        "update", help="publish booking.updated: the given fields changed, the rest as stored")
    update.add_argument("booking_id", metavar="BOOKING_ID")
    update.add_argument("--restaurant", required=True, metavar="R", help="restaurant id")
    _add_booking_fields(update, required=False)
    update.set_defaults(handler=cmd_update)

    cancel = actions.add_parser("cancel", help="publish booking.cancelled")
    cancel.add_argument("booking_id", metavar="BOOKING_ID")
    cancel.add_argument("--restaurant", required=True, metavar="R", help="restaurant id")
    cancel.set_defaults(handler=cmd_cancel)

    show = actions.add_parser("show", help="the booking as the service has it (exit 1: unknown)")
    show.add_argument("booking_id", metavar="BOOKING_ID")
    show.add_argument("--json", action="store_true", help="the API's JSON object, one line")
    show.set_defaults(handler=cmd_show)


# --- building the events -----------------------------------------------------------------------


class BadInput(ValueError):
    """Input the schema refuses; the message names the flag."""


def new_booking_id() -> str:
    return f"b-{uuid.uuid4().hex[:10]}"


def _flag_message(exc: Exception) -> str:
    """A pydantic error as `--flag: problem; …`."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        for field, flag in FLAGS.items():  # model-level messages name contract fields
            message = message.replace(field, flag)
        parts.append(f"{FLAGS.get(loc, loc)}: {message}" if loc else message)
    return "; ".join(parts)


def build_change(kind: str, booking_id: str, restaurant_id: str, **fields: Any):  # type: ignore[no-untyped-def]
    """A validated `BookingChange`; BadInput naming the flag when the schema refuses it."""
    from pydantic import ValidationError

    from producers.publisher import make_change

    try:
        return make_change(kind, booking_id, restaurant_id, **fields)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise BadInput(_flag_message(exc)) from None


def _hhmm(value: time | str | None) -> str | None:
    return value.strftime("%H:%M") if isinstance(value, time) else value


def created_fields(args: argparse.Namespace) -> dict[str, Any]:
    """What `send` puts in booking.created (event fields and booking fields together)."""
    end = None if args.end in (None, END_AUTO) else args.end
    source = args.source or "guest"
    return {
        "source": source,
        "channel": "ops.walkin" if source == "ops" else "cli",
        "idempotency_key": args.idempotency_key,
        "booking_date": args.date.isoformat(),
        "start_time": _hhmm(args.time),
        "end_time": _hhmm(end),
        "party_size": args.party,
        "customer_name": args.name if args.name is not None else DEFAULT_NAME,
        "customer_email": args.email or None,
        "customer_phone": args.phone or None,
        "notes": args.notes,
    }


def updated_fields(args: argparse.Namespace, stored: dict[str, Any]) -> dict[str, Any]:
    """What `update` puts in booking.updated: the flags given, every other field as stored.
    A blank --email/--phone keeps the stored one (as the service does with a blank)."""

    def given(value: Any, stored_value: Any) -> Any:
        return stored_value if value is None else value

    if args.end == END_AUTO:
        end = None
    elif args.end is not None:
        end = _hhmm(args.end)
    else:
        # The end the booking was sent with (null: derived from turn minutes). An API
        # without that field shows only the derived end, which must not become a request.
        end = stored.get("requested_end_time")
    return {
        "source": args.source or stored.get("source") or "guest",
        "channel": stored.get("channel"),
        "idempotency_key": args.idempotency_key,
        "booking_date": args.date.isoformat() if args.date else stored["booking_date"],
        "start_time": _hhmm(args.time) or stored["start_time"],
        "end_time": end,
        "party_size": given(args.party, stored["party_size"]),
        "customer_name": args.name or stored.get("customer_name") or DEFAULT_NAME,
        "customer_email": args.email or stored.get("customer_email"),
        "customer_phone": args.phone or stored.get("customer_phone"),
        "seating_preference": stored.get("seating_preference"),
        "notes": given(args.notes, stored.get("notes")),
    }


UPDATE_FLAGS = ("date", "time", "end", "party", "name", "email", "phone", "notes", "source",
                "idempotency_key")
# Booking fields a person changes, with their stored names, in the order they are reported.
_REPORTED = (("booking_date", "date"), ("start_time", "time"), ("end_time", "end"),
             ("party_size", "party"), ("customer_name", "name"), ("customer_email", "email"),
             ("customer_phone", "phone"), ("notes", "notes"))


def differences(stored: dict[str, Any], fields: dict[str, Any]) -> list[str]:
    """`time 19:00 -> 20:00`, … for each field the update changes."""
    changed = []
    for name, label in _REPORTED:
        before = stored.get("requested_end_time") if name == "end_time" else stored.get(name)
        after = fields.get(name)
        if name == "end_time" and after is None and before is None:
            continue
        if after != before:
            changed.append(f"{label} {before if before is not None else '-'} -> "
                           f"{after if after is not None else '-'}")
    return changed


# --- publishing --------------------------------------------------------------------------------


class BrokerUnreachable(Exception):
    pass


def publish(settings: Settings, change: Any) -> None:
    """Publish one change and wait for the broker's acknowledgement; BrokerUnreachable (one
    line, naming the broker) when that does not happen in time."""
    from aiokafka.errors import KafkaError

    from producers.publisher import Publisher
    from seatflow.logs import quiet_clients
    from streams.admin import TopicCreationError

    quiet_clients()

    async def send() -> None:
        async with Publisher(settings, client_id="seatflow-cli") as publisher:
            await publisher.publish_change(change)
            await publisher.flush()

    try:
        asyncio.run(asyncio.wait_for(send(), PUBLISH_TIMEOUT_S))
    except (KafkaError, OSError, TimeoutError, TopicCreationError) as exc:
        raise BrokerUnreachable(
            f"broker: cannot publish to {settings.kafka_bootstrap} ({describe_error(exc)}) — "
            "is `seatflow dev` running, or SEATFLOW_KAFKA_BOOTSTRAP set?") from exc


def describe_error(exc: BaseException) -> str:
    """`KafkaConnectionError: Unable to bootstrap …`, the class named once."""
    name, text = type(exc).__name__, str(exc)
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


def _publish_or_fail(settings: Settings, change: Any) -> int | None:
    """None when published; else the exit code, the reason printed."""
    from config.kafka import KafkaTlsError

    try:
        publish(settings, change)
    except KafkaTlsError as exc:
        return fail(str(exc), EXIT_USAGE)
    except BrokerUnreachable as exc:
        return fail(str(exc))
    return None


def _when(fields: dict[str, Any]) -> str:
    day = date.fromisoformat(fields["booking_date"])
    end = f"-{fields['end_time']}" if fields.get("end_time") else ""
    return f"{day:%a} {day.isoformat()} {fields['start_time']}{end}"


def _stored_or_fail(settings: Settings, booking_id: str) -> dict[str, Any] | int:
    """The stored booking, or the exit code once the reason is printed."""
    try:
        stored = api.get_booking(settings, booking_id)
    except api.ApiError as exc:
        return fail(str(exc), exc.exit_code)
    if stored is None:
        return fail(f"booking {booking_id} not found: {api.api_base_url(settings)} does not know it "
                    "(a booking just sent may take a moment to arrive)")
    return stored


# --- commands ----------------------------------------------------------------------------------


def cmd_send(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    booking_id = args.booking_id if args.booking_id is not None else new_booking_id()
    fields = created_fields(args)
    try:
        change = build_change("booking.created", booking_id, args.restaurant, **fields)
    except BadInput as exc:
        return fail(f"error: {exc}", EXIT_USAGE)
    if args.date < date.today():
        print(f"note: {args.date} has passed: the service will not seat it", file=sys.stderr)
    code = _publish_or_fail(settings, change)
    if code is not None:
        return code
    who = fields["customer_name"] + (f" <{fields['customer_email']}>"
                                     if fields["customer_email"] else "")
    print(f"booking.created published: {args.restaurant}, {_when(fields)}, "
          f"party of {args.party}, {who}", file=out)
    print(f"follow it: seatflow watch --booking {booking_id}", file=out)
    print(booking_id, file=out, flush=True)
    return EXIT_OK


def cmd_update(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if all(getattr(args, flag) is None for flag in UPDATE_FLAGS):
        return fail("error: nothing to change: give at least one of --date, --time, --party, "
                    "--end, --name, --email, --phone, --notes, --source", EXIT_USAGE)
    try:
        api.api_base_url(settings)
        build_change("booking.cancelled", args.booking_id, args.restaurant)  # ids are valid
    except BadInput as exc:
        return fail(f"error: {str(exc).replace('--booking-id', 'BOOKING_ID')}", EXIT_USAGE)
    except api.ApiError as exc:
        return fail(str(exc), exc.exit_code)
    stored = _stored_or_fail(settings, args.booking_id)
    if isinstance(stored, int):
        return stored
    if stored.get("status") == "cancelled":
        return fail(f"booking {args.booking_id} is cancelled: the service ignores edits of a "
                    "cancelled booking; nothing published")
    fields = updated_fields(args, stored)
    try:
        change = build_change("booking.updated", args.booking_id, args.restaurant, **fields)
    except BadInput as exc:
        return fail(f"error: {exc}", EXIT_USAGE)
    code = _publish_or_fail(settings, change)
    if code is not None:
        return code
    if stored.get("restaurant_id") != args.restaurant:
        print(f"note: moves the booking from {stored.get('restaurant_id')} to {args.restaurant}",
              file=out)
    changed = differences(stored, fields)
    print(f"booking.updated published: {args.restaurant}, "
          + (", ".join(changed) if changed else "no field differs from the stored booking"),
          file=out)
    print(args.booking_id, file=out, flush=True)
    return EXIT_OK


def cmd_cancel(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        change = build_change("booking.cancelled", args.booking_id, args.restaurant)
    except BadInput as exc:
        return fail(f"error: {str(exc).replace('--booking-id', 'BOOKING_ID')}", EXIT_USAGE)
    code = _publish_or_fail(settings, change)
    if code is not None:
        return code
    print(f"booking.cancelled published: {args.restaurant}", file=out)
    print(args.booking_id, file=out, flush=True)
    return EXIT_OK


def cmd_show(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    stored = _stored_or_fail(settings, args.booking_id)
    if isinstance(stored, int):
        return stored
    if args.json:
        print(json.dumps(stored, ensure_ascii=False), file=out, flush=True)
        return EXIT_OK
    day_url = None
    if stored.get("restaurant_id") and stored.get("booking_date"):
        day_url = api.api_base_url(settings) + api.day_path(stored["restaurant_id"],
                                                        stored["booking_date"])
    print(describe(stored, day_url), file=out, flush=True)
    return EXIT_OK


# --- show: the booking for a person --------------------------------------------------------


def _allocation(view: dict[str, Any]) -> str | None:
    if view.get("status") != "pending":
        return None
    state = view.get("alloc_state")
    attempts = view.get("attempts") or 0
    text = {"queued": "waiting for the allocator", "retry": "no table yet, will retry",
            "exhausted": "no table: retries used up", "idle": "not auto-assigned"}.get(
        str(state), str(state))
    if attempts:
        text += f" ({attempts} attempt{'s' if attempts != 1 else ''}"
        text += f", last: {view['last_failure']})" if view.get("last_failure") else ")"
    return text


def describe(view: dict[str, Any], day_url: str | None = None) -> str:
    """`seatflow bookings show`'s text: one labelled line per fact, emails one per line."""
    rows: list[tuple[str, str]] = [
        ("booking", f"{view.get('booking_id')}  at {view.get('restaurant_id')}"),
        ("status", f"{view.get('status')}  (version {view.get('booking_version', '?')})"),
    ]
    end = f"-{view['end_time']}" if view.get("end_time") else ""
    rows.append(("when", f"{view.get('booking_date')} {view.get('start_time')}{end}, "
                         f"party of {view.get('party_size')}"))
    allocation = _allocation(view)
    if allocation:
        rows.append(("seating", allocation))
    rows.append(("tables", ", ".join(view.get("table_ids") or []) or "-"))
    contact = [str(view[k]) for k in ("customer_name", "customer_email", "customer_phone")
               if view.get(k)]
    rows.append(("guest", "  ".join(contact) or "-"))
    if view.get("notes"):
        rows.append(("notes", str(view["notes"])))
    emails = view.get("emails") or []
    if not emails:
        rows.append(("emails", "-"))
    for i, mail in enumerate(emails):
        status = "not sent" if mail.get("status") == "cancelled" else mail.get("status")
        line = f"{mail.get('kind')}: {status}"
        if mail.get("recipient"):
            line += f" to {mail['recipient']}"
        if mail.get("reason"):
            line += f" ({mail['reason']})"
        rows.append(("emails" if i == 0 else "", line))
    if day_url:
        rows.append(("day", day_url))
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(f"{label.ljust(width)}{value}".rstrip() for label, value in rows)

