"""The programme's versions (each a JSON document) and the scans of the periodic jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from crm_loyalty.repository.base import Sql

_VERSIONS = text("SELECT version, effective_from FROM programme_versions ORDER BY version")
_CONFIGS = text("SELECT version, config FROM programme_versions WHERE version = ANY(CAST(:versions AS integer[]))")
_SEED = text("""
    INSERT INTO programme_versions (version, config, effective_from, created_by, note)
    VALUES (1, CAST(:config AS jsonb), '1970-01-01T00:00:00Z', 'system', 'the default programme')
    ON CONFLICT (version) DO NOTHING
""")
_PROGRAMME = text("""
    SELECT version, effective_from, created_by, note, created_at, config FROM programme_versions
    ORDER BY version DESC LIMIT :limit
""")
_NEW_VERSION = text("""
    INSERT INTO programme_versions (version, config, effective_from, created_by, note)
    SELECT max(version) + 1, CAST(:config AS jsonb), :at, :actor, :note FROM programme_versions
    RETURNING version, effective_from, created_by, note, created_at, config
""")
_LOCK_PROGRAMME = text("LOCK TABLE programme_versions IN EXCLUSIVE MODE")

_DUE_RELEASES = text("""
    SELECT DISTINCT customer_id FROM lots WHERE state = 'pending' AND available_at <= :as_of LIMIT :limit
""")
_DUE_EXPIRIES = text("""
    SELECT DISTINCT customer_id FROM lots
    WHERE state = 'available' AND expires_at <= :as_of AND remaining > 0 LIMIT :limit
""")
_DUE_NOTICES = text("""
    SELECT customer_id, sum(remaining) AS points, min(expires_at) AS first_expiry, array_agg(lot_id) AS lot_ids
    FROM lots
    WHERE state = 'available' AND remaining > 0 AND expiry_noticed_at IS NULL
      AND expires_at > :as_of AND expires_at <= :horizon
      AND NOT EXISTS (SELECT 1 FROM erased_customers e WHERE e.customer_id = lots.customer_id)
    GROUP BY customer_id ORDER BY customer_id LIMIT :limit
""")
_MARK_NOTICED = text("UPDATE lots SET expiry_noticed_at = :as_of WHERE lot_id = ANY(CAST(:ids AS bigint[]))")
_ABOVE_ENTRY_TIER = text("""
    SELECT customer_id FROM accounts WHERE tier <> :entry AND customer_id > :after
    ORDER BY customer_id LIMIT :limit
""")
_BIRTHDAYS_DUE = text("""
    SELECT customer_id FROM accounts
    WHERE birthday IS NOT NULL AND erased_at IS NULL AND extract(month FROM birthday) = :month
      AND (birthday_greeted_year IS NULL OR birthday_greeted_year < :year
           OR birthday_bonus_year IS NULL OR birthday_bonus_year < :year) AND customer_id > :after
    ORDER BY customer_id LIMIT :limit
""")
# Held order discounts that can no longer be tied to their member's order: the order is known here
# (paid, settled or cancelled without this discount being tied to it) or the hold ran out.
_STALE_HOLDS = text("""
    SELECT r.redemption_id, r.customer_id, r.order_id,
           EXISTS (SELECT 1 FROM orders o WHERE o.order_id = r.order_id) AS order_known
    FROM redemptions r
    WHERE r.status = 'held' AND (r.created_at <= :cutoff
                                 OR EXISTS (SELECT 1 FROM orders o WHERE o.order_id = r.order_id))
    ORDER BY r.customer_id, r.redemption_id LIMIT :limit
""")
_JOB_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended('crm-loyalty-job:' || :job, 0))")


def _version(row: Any) -> dict[str, Any]:
    version = dict(row._mapping)
    if not isinstance(version["config"], dict):
        version["config"] = orjson.loads(version["config"])
    return version


class ProgrammeSql(Sql):
    async def seed_programme(self, config_json: str) -> None:
        """Version 1, the default programme, unless there is one."""
        await self.conn.execute(_SEED, {"config": config_json})

    async def programme_versions(self) -> list[tuple[int, datetime]]:
        return [(row.version, row.effective_from) for row in await self.conn.execute(_VERSIONS)]

    async def programme_configs(self, versions: list[int]) -> dict[int, dict[str, Any]]:
        return {row.version: row.config if isinstance(row.config, dict) else orjson.loads(row.config)
                for row in await self.conn.execute(_CONFIGS, {"versions": versions})}

    async def latest_programmes(self, limit: int) -> list[dict[str, Any]]:
        """The newest versions with who saved them and when, newest first."""
        return [_version(row) for row in await self.conn.execute(_PROGRAMME, {"limit": limit})]

    async def lock_programme(self) -> None:
        """Serialise saves of new versions (until the end of the transaction)."""
        await self.conn.execute(_LOCK_PROGRAMME)

    async def add_programme_version(self, config_json: str, *, at: datetime, actor: str, note: str | None
                                    ) -> dict[str, Any]:
        return _version((await self.conn.execute(_NEW_VERSION, {"config": config_json, "at": at, "actor": actor,
                                                                "note": note})).one())

    # -- the periodic jobs' scans -----------------------------------------------------------------

    async def try_job_lock(self, job: str) -> bool:
        """The job's advisory lock for this transaction; False when another replica runs it now."""
        return bool((await self.conn.execute(_JOB_LOCK, {"job": job})).scalar())

    async def members_with_releases_due(self, as_of: datetime, limit: int) -> list[str]:
        return [row[0] for row in await self.conn.execute(_DUE_RELEASES, {"as_of": as_of, "limit": limit})]

    async def members_with_expiries_due(self, as_of: datetime, limit: int) -> list[str]:
        return [row[0] for row in await self.conn.execute(_DUE_EXPIRIES, {"as_of": as_of, "limit": limit})]

    async def expiry_notices_due(self, as_of: datetime, horizon: datetime, limit: int
                                 ) -> list[tuple[str, int, datetime, list[int]]]:
        """(customer id, points, first expiry, lot ids) of members not yet told about points expiring by ``horizon``."""
        return [(row.customer_id, int(row.points), row.first_expiry, list(row.lot_ids))
                for row in await self.conn.execute(_DUE_NOTICES, {"as_of": as_of, "horizon": horizon,
                                                                  "limit": limit})]

    async def mark_noticed(self, lot_ids: list[int], as_of: datetime) -> None:
        await self.conn.execute(_MARK_NOTICED, {"as_of": as_of, "ids": lot_ids})

    async def members_above(self, entry_tier: str, after: str, limit: int) -> list[str]:
        return [row[0] for row in await self.conn.execute(_ABOVE_ENTRY_TIER, {"entry": entry_tier, "after": after,
                                                                              "limit": limit})]

    async def birthdays_due(self, month: int, year: int, after: str, limit: int) -> list[str]:
        return [row[0] for row in await self.conn.execute(_BIRTHDAYS_DUE, {"month": month, "year": year,
                                                                           "after": after, "limit": limit})]

    async def stale_holds(self, cutoff: datetime, limit: int) -> list[tuple[str, str, str | None, bool]]:
        """(redemption id, customer id, order id, whether the order is known) of holds to void."""
        return [(row.redemption_id, row.customer_id, row.order_id, row.order_known)
                for row in await self.conn.execute(_STALE_HOLDS, {"cutoff": cutoff, "limit": limit})]
