"""Hostile HTTP against a real worker with an API token (docs/interface.md §6): odd ids and
paths (very long, NUL, encoded slashes and dots, invalid UTF-8, unicode, SQL), odd headers
and request lines, bad tokens. Nothing may answer 5xx or show a traceback, and no answer may
show a guest's data unless the request carried the token and named that guest's booking:
not through a neighbouring id, another restaurant's path or the day view's path.

Requests go over raw sockets, byte for byte as written here (an HTTP library would
normalise or refuse many of them).
"""

from __future__ import annotations

import random
import secrets
import urllib.parse
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr
from yarl import URL

from tests.integration.conftest import Harness, restaurant
from tests.integration.test_lifecycle import DAY, created
from tests.support.privacy import RawAnswer, raw_http
from tests.support.workers import WorkerProcess

TRACE_MARKS = (b"Traceback", b'File "/', b".py\", line", b"site-packages")


def request(target: bytes, headers: list[bytes] | None = None, method: bytes = b"GET",
            version: bytes = b"HTTP/1.1", body: bytes = b"") -> bytes:
    lines = [method + b" " + target + b" " + version, b"Host: 127.0.0.1",
             b"Connection: close", *(headers or [])]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def named_booking(raw: bytes, auth: bytes, booking_ids: tuple[str, ...]) -> str | None:
    """The booking a request may legitimately read: a GET whose first Authorization header
    is the token and whose path, normalised as aiohttp's URL library does it, is
    /bookings/<id>."""
    lines = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    # Method, target, version; a parser may take runs of spaces as one separator.
    parts = lines[0].split()
    given = [line for line in lines[1:] if line.lower().startswith(b"authorization:")]
    if len(parts) != 3 or parts[0] != b"GET" or not given or given[0] != auth:
        return None
    target = parts[1]
    try:
        text = target.decode("utf-8")
        # As given, and with dot segments resolved (as an absolute URL is).
        paths = {URL(text).path, URL("http://h" + text).path if text.startswith("/") else ""}
    except ValueError:
        return None
    return next((b for b in booking_ids if f"/bookings/{b}" in paths), None)


def hostile_ids(own: str, other: str) -> list[str]:
    """Ids near `own` (and around `other`, another restaurant's booking) that must not
    reach either."""
    return [
        "", " ", "%", "*", "..", ".", "%00", own + "%00", own + "%00" + other, own.upper(),
        own + " ", " " + own, own + "%20", own + "%0a", own + "/", own + "%2F" + other,
        own + "%2f..%2f" + other, "..%2F" + other, "%2e%2e%2f" + other, own[:-1],
        own + "*", own + "%", own + "'", "' OR '1'='1", "1; DROP TABLE bookings; --",
        own + "' OR booking_id LIKE '%", "%FF%FE", "%C0%AF", "%ED%A0%80", "%F4%90%80%80",
        "%E2%80%AE" + own, own + "%E2%80%8B", "\u00e9".encode().decode("latin-1"),
        "a" * 201, "a" * 7000, own + "?booking_id=" + other, own + "#" + other,
        own + ";" + other, own + "," + other, "%25" + own, urllib.parse.quote(own * 3),
    ]


async def test_hostile_requests_never_5xx_trace_or_leak(
    start_worker: Callable[..., WorkerProcess], stack: Any,
) -> None:
    token = secrets.token_urlsafe(24)
    worker = start_worker(api_token=SecretStr(token))
    port = worker.settings.web_port
    h = Harness(worker, stack)
    r1, r2 = h.ids("r1"), h.ids("r2")
    b1, b2 = h.ids("b1"), h.ids("b2")
    await h.publish(restaurant(r1), restaurant(r2), created(h, b1, r1), created(h, b2, r2))
    for bid in (b1, b2):
        await h.wait_booking(bid, lambda v: v["status"] == "confirmed")
    guests = {b1: f"{b1}@guest.example".encode(), b2: f"{b2}@guest.example".encode()}
    auth = b"Authorization: Bearer " + token.encode()

    cases: list[tuple[str, bytes]] = []

    def add(label: str, raw: bytes) -> None:
        cases.append((label, raw))

    for own, other in ((b1, b2), (b2, b1)):
        for hostile in hostile_ids(own, other):
            target = b"/bookings/" + hostile.encode("latin-1", "replace")
            add(f"id {hostile[:40]!r}", request(target, [auth]))
            add(f"id {hostile[:40]!r} without token", request(target))
        for path in (f"/restaurants/{own}/days/{DAY}", f"/restaurants/{r2}/days/{DAY}",
                     f"/restaurants/{r1}/days/{DAY}%2F..%2F..%2Fbookings%2F{other}",
                     f"/restaurants/{r1}%00{r2}/days/{DAY}", f"/restaurants/*/days/{DAY}",
                     f"/restaurants/{r1}/days/9999-99-99", f"/restaurants/{r1}/days/" + "9" * 5000,
                     f"/bookings/{own}/../{other}/..", f"//bookings//{own}", "/bookings",
                     "/bookings/", f"/Bookings/{own}", f"/bookings/{own}/emails",
                     "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/health/..",
                     "/health%00", "/metrics/../bookings/" + own, "/" + "x" * 7000):
            add(f"path {path[:60]!r}", request(path.encode(), [auth]))
            add(f"path {path[:60]!r} without token", request(path.encode()))
    # The token, wrong in every way; other headers too long or broken.
    for bad in (b"Bearer", b"Bearer ", b"bearer", b"Bearer " + token.encode()[:-1],
                b"Bearer " + token.encode() + b"\x00", b"Bearer " + token.encode() * 200,
                b"Bearer " + b"x" * 9000, b"Bearer \xff\xfe\xfd", b"Bearer t\xc3\xb6k\xc3\xa9n",
                b"Bearer " + token.encode() + b"\r\nX-Injected: 1", b"Basic " + token.encode(),
                b"Bearer\t" + token.encode(), b"Bearer%20" + token.encode(), b"\x00", b"",
                b"Bearer " + token.upper().encode()):
        add(f"authorization {bad[:40]!r}", request(f"/bookings/{b1}".encode(),
                                                   [b"Authorization: " + bad]))
    for header in (b"X-Long: " + b"a" * 20_000, b"X-Nul: a\x00b", b"X-Utf8: \xf0\x9f\x98\x80",
                   b"X-Bad: \xff\xfe", b"Host: " + b"h" * 9000, b"Content-Length: -1",
                   b"Content-Length: 99999999999999999999", b"Transfer-Encoding: chunked",
                   b"Transfer-Encoding: gzip, chunked", b"X-Forwarded-For: 127.0.0.1",
                   b": empty-name", b"No-Colon", b"Authorization: Bearer a"):
        add(f"header {header[:40]!r}", request(f"/bookings/{b1}".encode(), [header, auth]))
    add("many headers", request(f"/bookings/{b1}".encode(),
                                [b"X-Many-%d: 1" % i for i in range(200)] + [auth]))
    add("duplicate authorization, wrong first",
        request(f"/bookings/{b1}".encode(), [b"Authorization: Bearer wrong", auth]))
    # Methods, request lines, bodies.
    for method in (b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD", b"TRACE",
                   b"CONNECT", b"FOO", b"G\x00ET", b"get"):
        add(f"method {method!r}", request(f"/bookings/{b1}".encode(), [auth], method=method))
    for target in (b"*", b"http://evil.example/bookings/" + b1.encode(),
                   b"/bookings/" + b1.encode() + b" HTTP/1.1\r\nX: y", b"/bookings/\x00",
                   b"/bookings/\xc3\xa9", b"/bookings/\xff", b"/bookings/%zz", b"/bookings/\x7f",
                   b"bookings/" + b1.encode(), b""):
        add(f"target {target[:40]!r}", request(target, [auth]))
    for version in (b"HTTP/1.0", b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.1x", b""):
        add(f"version {version!r}", request(f"/bookings/{b1}".encode(), [auth],
                                            version=version))
    add("body on GET", request(f"/bookings/{b1}".encode(),
                               [auth, b"Content-Length: 5"], body=b"hello"))
    add("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200))
    add("nothing", b"\r\n\r\n")
    # And a seeded random walk over bytes and encodings.
    rng = random.Random(17)
    alphabet = [*"abcdefghijklmnopqrstuvwxyz0123456789-_.~/%?#;:@&=+$,!'()*[] ",
                "%00", "%2F", "%2f", "%5C", "%2E", "%C0%AF", "%FF", "\u00e9", "\u202e", "\ud800"]
    for i in range(150):
        hostile = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        target = b"/bookings/" + hostile.encode("utf-8", "surrogatepass")
        add(f"random {i}", request(target, [auth] if i % 2 else []))

    answers: list[tuple[str, RawAnswer, str | None]] = []
    for label, raw in cases:
        answers.append((label, await raw_http(port, raw), named_booking(raw, auth, (b1, b2))))
    worker.check_alive("the fuzz run")

    problems = []
    for label, answer, names in answers:
        if answer.status is not None and answer.status >= 500:
            problems.append((label, answer.status, answer.body[:200]))
        if any(mark in answer.head + answer.body for mark in TRACE_MARKS):
            problems.append((label, "traceback", answer.body[:300]))
        for bid, address in guests.items():
            # A guest's data only for the one authorised request that names the booking.
            if address in answer.body and names != bid:
                problems.append((label, f"shows {bid}'s guest", answer.body[:200]))
    assert not problems, problems
    # The run reached the service (not a wall of refused connections): every kind of answer.
    statuses = Counter(answer.status for _, answer, _ in answers)
    print(f"fuzz: {len(answers)} requests, answers {dict(statuses)}")
    assert {200, 400, 401, 404} <= set(statuses), statuses
    assert statuses[None] <= len(answers) // 20, statuses

    # The service still answers, and the exact, authorised requests still work.
    for own in (b1, b2):
        answer = await raw_http(port, request(f"/bookings/{own}".encode(), [auth]))
        assert answer.status == 200 and guests[own] in answer.body
        other = b2 if own == b1 else b1
        assert guests[other] not in answer.body
    assert worker.health()[0] == 200
