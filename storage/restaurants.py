"""Restaurant configurations, and the locks that order work per restaurant."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from models.restaurant import RestaurantConfig

# Parsing a config is the costliest thing per batch; the row's updated_at keys the cache.
_config_cache: dict[tuple[str, datetime], RestaurantConfig] = {}
_CONFIG_CACHE_SIZE = 10_000


def _parse_config(restaurant_id: str, updated_at: datetime, raw: dict) -> RestaurantConfig:
    key = (restaurant_id, updated_at)
    cfg = _config_cache.get(key)
    if cfg is None:
        if len(_config_cache) > _CONFIG_CACHE_SIZE:
            _config_cache.clear()
        cfg = _config_cache[key] = RestaurantConfig.model_validate(raw)
    return cfg


def _lock_key(restaurant_id: str) -> str:
    return f"restaurant:{restaurant_id}"


class RestaurantRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(
        self, restaurant_ids: list[str], *, lock: bool = False
    ) -> dict[str, RestaurantConfig]:
        """Validated configs; the jsonb is fetched and parsed only when its version is new.
        `lock`: row-lock them (FOR UPDATE), in id order: one allocating writer each."""
        if not restaurant_ids:
            return {}
        sql = (
            "SELECT restaurant_id, updated_at FROM restaurants "
            "WHERE restaurant_id = ANY($1::text[]) ORDER BY restaurant_id"
        )
        if lock:
            sql += " FOR UPDATE"
        versions = await self.conn.fetch(sql, sorted(set(restaurant_ids)))
        missing = [r["restaurant_id"] for r in versions
                   if (r["restaurant_id"], r["updated_at"]) not in _config_cache]
        if missing:
            for r in await self.conn.fetch(
                "SELECT restaurant_id, config, updated_at FROM restaurants"
                " WHERE restaurant_id = ANY($1::text[])",
                missing,
            ):
                _parse_config(r["restaurant_id"], r["updated_at"], r["config"])
        out = {}
        for r in versions:
            cfg = _config_cache.get((r["restaurant_id"], r["updated_at"]))
            if cfg is not None:  # None only if a newer version landed between the two reads
                out[r["restaurant_id"]] = cfg
        return out

    async def save(self, cfg: RestaurantConfig) -> None:
        await self.conn.execute(
            "INSERT INTO restaurants (restaurant_id, slug, name, timezone, contact_email, config,"
            " updated_at) VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp())"
            " ON CONFLICT (restaurant_id) DO UPDATE SET slug = EXCLUDED.slug,"
            " name = EXCLUDED.name, timezone = EXCLUDED.timezone,"
            " contact_email = EXCLUDED.contact_email, config = EXCLUDED.config,"
            " updated_at = EXCLUDED.updated_at",
            cfg.restaurant_id,
            cfg.slug,
            cfg.name,
            cfg.timezone,
            cfg.contact_email,
            cfg.model_dump(mode="json"),
        )
        await self.conn.execute(
            "INSERT INTO restaurant_tables (restaurant_id, table_id)"
            " SELECT $1, t FROM unnest($2::text[]) t ON CONFLICT DO NOTHING",
            cfg.restaurant_id,
            [t.table_id for t in cfg.tables],
        )

    async def lock_shared(self, restaurant_ids: list[str]) -> None:
        """Readers of 'is this restaurant configured?' vs the config writer (parking race)."""
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock_shared(hashtext(k)) FROM unnest($1::text[]) k"
            " ORDER BY k",
            sorted({_lock_key(r) for r in restaurant_ids}),
        )

    async def lock_exclusive(self, restaurant_id: str) -> None:
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                                _lock_key(restaurant_id))
