"""The embedded PostgreSQL 16 (pgserver): private, Unix socket only."""

from __future__ import annotations

import atexit
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.ports import EmbeddedStartError

if TYPE_CHECKING:
    from config.settings import Settings



@dataclass
class EmbeddedPostgres:
    datadir: Path
    url: str
    _server: object = field(repr=False)

    @property
    def postmaster_pid(self) -> int | None:
        pid_file = self.datadir / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Release this process's handle; the server stops when the last live handle goes.

        pgserver shares one server between processes and counts handles by pid in
        `.handle_pids.json`. A process killed with SIGKILL leaves its pid there, which would
        keep the server up for ever, so dead pids are dropped first.
        """
        server = self._server
        handles = getattr(server, "global_process_id_list", None)
        lock = getattr(server, "_lock", None)
        if handles is not None and lock is not None:
            import psutil

            with lock:
                pids = handles.get()
                alive = [p for p in pids if p == os.getpid() or psutil.pid_exists(p)]
                if alive != pids:
                    handles.put(alive)
        _attached_postgres.pop(self.datadir, None)
        server.cleanup()  # type: ignore[attr-defined]


# What a new data directory gets beyond initdb's defaults. shared_buffers: the default
# 128 MB is a tenth of what bench.soak's database reaches, and past it each change read ~70
# blocks through the kernel's page cache (a copy and a system call each) instead of ~1.
EMBEDDED_CONF = {"shared_buffers": "512MB"}


def start_postgres(datadir: Path) -> EmbeddedPostgres:
    """Start (or attach to an already running) private PostgreSQL 16 in `datadir`.

    It listens on a Unix socket only; `.url` is `postgresql://postgres:@/postgres?host=<dir>`,
    which asyncpg accepts. As root, pgserver runs the server as the system user `pgserver`.
    A data directory it creates gets EMBEDDED_CONF; an existing one keeps its own settings.
    """
    datadir = Path(datadir).expanduser().resolve()
    try:
        datadir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver copes (uses /tmp).
            warnings.simplefilter("ignore")
            import pgserver

            new = not (datadir / "PG_VERSION").exists()
            server = pgserver.get_server(datadir, cleanup_mode="stop")
            if new:
                # pgserver runs initdb and starts the server in one call: configure, restart.
                with (datadir / "postgresql.conf").open("a") as conf:
                    conf.write("\n# seatflow's embedded stack (devstack/postgres.py)\n")
                    conf.writelines(f"{k} = '{v}'\n" for k, v in EMBEDDED_CONF.items())
                server.cleanup()
                atexit.unregister(server._cleanup)  # that handle is gone; the next one stops it
                server = pgserver.get_server(datadir, cleanup_mode="stop")
        url = server.get_uri()
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmbeddedStartError(
            f"postgres: the embedded server in {datadir} did not start ({detail}) — see "
            f"{datadir / 'log'}, remove the folder to start afresh, or set SEATFLOW_DATABASE_URL"
        ) from exc
    pg = EmbeddedPostgres(datadir=datadir, url=url, _server=server)
    _attached_postgres[datadir] = pg
    return pg


# Servers this process started or attached to, so `database_url` reuses the handle.
_attached_postgres: dict[Path, EmbeddedPostgres] = {}


def database_url(settings: Settings) -> str:
    """The configured database, else the embedded pgserver under settings.home (start or attach)."""
    if settings.database_url:
        return settings.database_url
    datadir = Path(settings.embedded_pgdata).expanduser().resolve()
    pg = _attached_postgres.get(datadir) or start_postgres(datadir)
    return pg.url
