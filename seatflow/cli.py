"""The `seatflow` command (docs/interface.md §8).

    seatflow worker [--verbose]          run one worker (configured or embedded infrastructure)
    seatflow dev [--demo] [--verbose]    embedded broker + PostgreSQL + SMTP sink, sample, worker
    seatflow schema [--out DIR]          JSON Schemas and an AsyncAPI document of the topics
    seatflow restaurants load FILE       validate and publish restaurant configuration
    seatflow dlq tail [--follow] [--json] [--limit N]
    seatflow dlq replay [--offset P:O ...] [--all] [--dry-run]
    seatflow guests erase (--email ADDR | --booking ID) [--restaurant R]
    seatflow bookings send|update|cancel|show ...   drive and inspect bookings (bookings_cli.py)
    seatflow watch [--booking ID] [--json] [--from-beginning]   follow what the service decides

Heavy modules (Faust, aiokafka) are imported only by the command that needs them.
Exit codes: 0 ok, 1 infrastructure trouble (one line on stderr), 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from config.settings import Settings, UnsafeWebBind, redact_url
from seatflow import bookings_cli, watch
from seatflow.console import EXIT_OK, EXIT_USAGE, fail

SAMPLE_RESTAURANT = Path(__file__).resolve().parent / "samples" / "ember-oak.yaml"
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

T = TypeVar("T")


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion in a helper thread. The main thread's event-loop state
    stays untouched for the worker (asyncio.run would leave "no current loop" behind)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _load_settings() -> Settings:
    return Settings()


# --- worker ------------------------------------------------------------------------------------


def _start_errors() -> tuple[type[Exception], ...]:
    """Errors that mean "the worker could not start", said in one line."""
    from seatflow.database import DatabaseNotConfigured
    from streams.connection import BrokerUnreachable

    try:
        from devstack import EmbeddedStartError
    except ImportError:  # a production install, without the devstack extra
        return (DatabaseNotConfigured, BrokerUnreachable)
    return (DatabaseNotConfigured, BrokerUnreachable, EmbeddedStartError)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from seatflow.worker import run_worker

    try:
        run_worker(settings, verbose=args.verbose)
    except UnsafeWebBind as exc:
        return fail(f"settings: {exc}", EXIT_USAGE)
    except _start_errors() as exc:
        return fail(str(exc))
    return EXIT_OK


# --- dev ---------------------------------------------------------------------------------------


def _day_url(settings: Settings, restaurant_id: str, day: date) -> str:
    from seatflow.api import day_path

    return f"http://127.0.0.1:{settings.web_port}{day_path(restaurant_id, day.isoformat())}"


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from devstack import (
        EmbeddedStartError,
        parse_host_port,
        start_broker,
        start_mail_sink,
        start_postgres,
    )

    stops: list[Callable[[], None]] = []
    # Ctrl-C and SIGTERM must unwind through `finally` (which stops the stack) at any moment,
    # also when a parent shell started us with SIGINT ignored. The worker may install its
    # own handlers while it runs; these are the fallback around it.
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        try:
            settings.check_web_access()
            host, kafka_port = parse_host_port(settings.kafka_bootstrap)
        except UnsafeWebBind as exc:
            return fail(f"settings: {exc}", EXIT_USAGE)
        except ValueError as exc:
            return fail(f"broker: SEATFLOW_KAFKA_BOOTSTRAP {exc}", EXIT_USAGE)
        if host not in _LOOPBACK_HOSTS:
            return fail(
                f"broker: `seatflow dev` starts a local broker but SEATFLOW_KAFKA_BOOTSTRAP is "
                f"{settings.kafka_bootstrap} — use `seatflow worker` for existing infrastructure",
                EXIT_USAGE,
            )
        home = settings.home.expanduser().resolve()
        home.mkdir(parents=True, exist_ok=True)
        mail_dir = (home / "mail").resolve()

        broker = start_broker(kafka_port, log_path=home / "broker.log")
        stops.append(broker.stop)
        if settings.database_url:
            db_url, db_note = settings.database_url, "(SEATFLOW_DATABASE_URL)"
        else:
            postgres = start_postgres(home / "pgdata")
            stops.append(postgres.stop)
            db_url, db_note = postgres.url, "(embedded PostgreSQL 16)"
        sink = start_mail_sink("127.0.0.1", settings.smtp_port, mail_dir)
        stops.append(sink.stop)

        settings = settings.model_copy(
            update={
                "kafka_bootstrap": broker.bootstrap,
                # The embedded broker is plaintext, whatever the environment says for Kafka.
                "kafka_security_protocol": "PLAINTEXT",
                **dict.fromkeys(["kafka_sasl_mechanism", "kafka_sasl_username",
                                 "kafka_sasl_password", "kafka_ssl_cafile",
                                 "kafka_ssl_certfile", "kafka_ssl_keyfile"]),
                "database_url": db_url,
                "smtp_host": "127.0.0.1",
                "smtp_tls": "none",
                "smtp_username": None,
                "smtp_password": None,
                "home": home,
            }
        )
        from producers.restaurants import load_file, publish_configs

        sample = load_file(SAMPLE_RESTAURANT)
        _run_async(publish_configs(settings, sample))  # also creates every topic

        restaurant_id = sample[0].restaurant_id
        print(
            "\n".join(
                [
                    "seatflow dev: embedded stack is up",
                    f"  broker    {broker.bootstrap}  (Tansu, in memory: topics vanish on exit)",
                    f"  database  {redact_url(db_url)}  {db_note}",
                    f"  mail      {mail_dir}  (one .eml file per email)",
                    f"  health    http://127.0.0.1:{settings.web_port}/health",
                    f"  day view  {_day_url(settings, restaurant_id, date.today())}",
                    f"  topics    prefix {settings.topic_prefix!r}; sample restaurant "
                    f"{', '.join(c.restaurant_id for c in sample)} loaded",
                    f"  try it    seatflow bookings send --restaurant {restaurant_id} --date "
                    "tomorrow --time 19:00 --party 4",
                    "Starting the worker. Ctrl-C stops the worker and the whole stack.",
                ]
            ),
            flush=True,
        )
        if args.demo:
            from seatflow.demo import start_in_background

            start_in_background(settings, restaurant_id,
                                lambda day: _day_url(settings, restaurant_id, day))
        from seatflow.worker import run_worker

        run_worker(settings, verbose=args.verbose)
        return EXIT_OK
    except EmbeddedStartError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        # A second Ctrl-C while stopping must not leave half the stack running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for stop in reversed(stops):
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                print(f"seatflow dev: stopping failed: {exc}", file=sys.stderr)
        signal.signal(signal.SIGINT, previous_sigint)
        signal.signal(signal.SIGTERM, previous_sigterm)


# --- schema ------------------------------------------------------------------------------------


def cmd_schema(settings: Settings, args: argparse.Namespace) -> int:
    from seatflow.schemas import write_schemas

    try:
        written = write_schemas(args.out)
    except OSError as exc:
        return fail(f"schema: cannot write to --out {args.out} ({exc})")
    print("\n".join(str(path) for path in written), flush=True)
    return EXIT_OK


# --- restaurants -------------------------------------------------------------------------------


def cmd_restaurants_load(settings: Settings, args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from config.topics import TopicNames
    from producers.restaurants import ConfigFileError, load_file, publish_configs
    from streams.connection import BrokerUnreachable

    try:
        configs = load_file(args.file)
    except ConfigFileError as exc:
        return fail(str(exc), EXIT_USAGE)
    try:
        count = _run_async(publish_configs(settings, configs))
    except BrokerUnreachable as exc:
        return fail(str(exc))
    except (KafkaError, OSError) as exc:
        return fail(
            f"broker: cannot publish to {settings.kafka_bootstrap} ({type(exc).__name__}) — "
            "is `seatflow dev` running, or SEATFLOW_KAFKA_BOOTSTRAP set?"
        )
    topic = TopicNames(settings.topic_prefix).restaurants
    ids = ", ".join(c.restaurant_id for c in configs)
    noun = "restaurant" if count == 1 else "restaurants"
    print(f"published {count} {noun} to {topic}: {ids}", flush=True)
    return EXIT_OK


# --- dead letters -------------------------------------------------------------------------------


def cmd_dlq_tail(settings: Settings, args: argparse.Namespace) -> int:
    from seatflow.dlq import tail

    return tail(settings, follow=args.follow, as_json=args.json, limit=args.limit)


def cmd_dlq_replay(settings: Settings, args: argparse.Namespace) -> int:
    from seatflow.dlq import replay

    return replay(settings, offsets=list(args.offset or []), all_=args.all, dry_run=args.dry_run)


# --- guests ------------------------------------------------------------------------------------


def cmd_guests_erase(settings: Settings, args: argparse.Namespace) -> int:
    from seatflow.guests import erase

    return erase(settings, email=args.email, booking_id=args.booking,
                 restaurant_id=args.restaurant)


# --- parser ------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seatflow",
        description="Restaurant booking stream processor. Settings come from the environment "
        "(SEATFLOW_*); unset infrastructure settings mean the embedded default.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run one worker (several share the work)")
    worker.add_argument("--verbose", "-v", action="store_true",
                        help="log everything at INFO, Faust's start-up included")
    worker.set_defaults(handler=cmd_worker)

    dev = commands.add_parser(
        "dev",
        help="start the embedded broker, PostgreSQL and mail sink, load the sample, run a worker",
    )
    dev.add_argument("--demo", action="store_true",
                     help="once the worker is up, play a short scripted evening at the sample "
                          "restaurant (a dozen bookings, an edit, a cancellation, a walk-in)")
    dev.add_argument("--verbose", "-v", action="store_true",
                     help="log everything at INFO, Faust's start-up included")
    dev.set_defaults(handler=cmd_dev)

    schema = commands.add_parser(
        "schema", help="write the message schemas (JSON Schema, AsyncAPI) for other teams"
    )
    schema.add_argument("--out", type=Path, default=Path("docs/schemas"), metavar="DIR",
                        help="folder to write to (default docs/schemas)")
    schema.set_defaults(handler=cmd_schema)

    restaurants = commands.add_parser("restaurants", help="restaurant configuration")
    restaurant_commands = restaurants.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = restaurant_commands.add_parser(
        "load", help="validate and publish a YAML or JSON file (one restaurant or a list)"
    )
    load.add_argument("file", type=Path, metavar="FILE")
    load.set_defaults(handler=cmd_restaurants_load)

    dlq = commands.add_parser("dlq", help="dead letters")
    dlq_commands = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = dlq_commands.add_parser("tail", help="print dead letters")
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new ones")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--limit", "-n", type=_positive_int, default=None, help="only the last N")
    tail.set_defaults(handler=cmd_dlq_tail)
    replay = dlq_commands.add_parser("replay", help="send dead letters back to their topic")
    replay.add_argument(
        "--offset",
        action="append",
        metavar="P:O",
        help="partition:offset of a dead letter (repeatable)",
    )
    replay.add_argument("--all", action="store_true", help="every dead letter")
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    replay.set_defaults(handler=cmd_dlq_replay)

    guests = commands.add_parser("guests", help="guests' personal data")
    guest_commands = guests.add_subparsers(dest="action", required=True, metavar="ACTION")
    erase = guest_commands.add_parser(
        "erase", help="erase a guest's name, email, phone and notes now (idempotent)")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", metavar="ADDR", help="every booking with this address")
    who.add_argument("--booking", metavar="ID", help="this booking's guest data")
    erase.add_argument("--restaurant", metavar="R",
                       help="with --email: only this restaurant's bookings")
    erase.set_defaults(handler=cmd_guests_erase)

    bookings_cli.add_commands(commands)
    watch.add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    try:
        settings = _load_settings()
    except ValidationError as exc:
        from models.common import format_error

        return fail(f"settings: {format_error(exc)}", EXIT_USAGE)
    return int(args.handler(settings, args))


if __name__ == "__main__":
    sys.exit(main())
