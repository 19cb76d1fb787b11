"""Which PostgreSQL a command uses: the configured one, else the embedded one."""

from __future__ import annotations

from config.settings import Settings


class DatabaseNotConfigured(RuntimeError):
    """No SEATFLOW_DATABASE_URL and no embedded PostgreSQL to fall back on."""


def database_url(settings: Settings) -> str:
    """SEATFLOW_DATABASE_URL, else the embedded PostgreSQL under SEATFLOW_HOME (started or
    attached), which needs the devstack extra."""
    if settings.database_url:
        return settings.database_url
    try:
        from devstack import database_url as embedded_database_url
    except ImportError as exc:
        raise DatabaseNotConfigured(
            "database: SEATFLOW_DATABASE_URL is unset and the embedded PostgreSQL is not "
            "installed — set SEATFLOW_DATABASE_URL, or install seatflow[devstack] for development"
        ) from exc
    return embedded_database_url(settings)
