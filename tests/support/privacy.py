"""Looking for guests' data from outside: in every text of a PostgreSQL database, in raw
HTTP answers, in which addresses a server listens on. Used by the personal-data tests.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from pathlib import Path

import asyncpg

# Column types that can hold text, and how to read them as text (bytea as its escaped
# form: an ASCII address stays readable).
_AS_TEXT = {
    "bytea": "encode({c}, 'escape')",
    "ARRAY": "{c}::text",
    "jsonb": "{c}::text",
    "json": "{c}::text",
    "text": "{c}",
    "character varying": "{c}",
}


@dataclass(frozen=True)
class Trace:
    table: str
    column: str
    text: str  # the value as text, cut short


async def traces_in_database(url: str, needles: list[str]) -> list[Trace]:
    """Every (table, column) value in the public schema holding one of `needles`
    (case-insensitive): text, varchar, json(b), bytea and arrays of them."""
    conn = await asyncpg.connect(url)
    try:
        columns = await conn.fetch(
            "SELECT c.table_name, c.column_name, c.data_type, c.udt_name"
            " FROM information_schema.columns c JOIN information_schema.tables t"
            "  ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
            " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
        )
        found: list[Trace] = []
        for col in columns:
            kind = col["data_type"]
            if kind == "ARRAY" and col["udt_name"] == "_bytea":
                expr = "array_to_string(ARRAY(SELECT encode(x, 'escape') FROM unnest({c}) x), ' ')"
            elif kind in _AS_TEXT:
                expr = _AS_TEXT[kind]
            else:
                continue
            text = expr.format(c=f'"{col["column_name"]}"')
            for needle in needles:
                rows = await conn.fetch(
                    f'SELECT left({text}, 300) AS v FROM "{col["table_name"]}"'
                    f" WHERE strpos(lower({text}), lower($1)) > 0",
                    needle,
                )
                found += [Trace(col["table_name"], col["column_name"], r["v"]) for r in rows]
        return found
    finally:
        await conn.close()


@dataclass(frozen=True)
class RawAnswer:
    status: int | None  # None: the server closed the connection without answering
    head: bytes
    body: bytes


async def raw_http(port: int, request: bytes, *, timeout: float = 10.0) -> RawAnswer:  # noqa: ASYNC109
    """Send `request` bytes as they are to 127.0.0.1:`port`; the answer, read to the end
    (requests should say `Connection: close`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), timeout)
    except (ConnectionError, OSError):
        data = b""
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    status = None
    if head.startswith(b"HTTP/"):
        parts = head.split(b" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return RawAnswer(status, head, body)


def listening_addresses(port: int) -> set[str]:
    """The local addresses TCP sockets listen on for `port` (Linux /proc/net/tcp{,6})."""
    found: set[str] = set()
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(socket.inet_ntop(family, raw))
    return found


def other_local_address() -> str | None:
    """A non-loopback IPv4 address of this host, if it has one (for "not reachable from
    elsewhere" checks)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address
