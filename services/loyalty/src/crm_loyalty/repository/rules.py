"""Earning rules beyond spend: the grants (once per member, rule and subject), referrals and the
members' fingerprints (the fraud guard's blind index), with set-based SQL. Repositories never commit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text

from crm_loyalty.repository.base import Sql

_RECORD_GRANTS = text("""
    INSERT INTO rule_grants (customer_id, rule, subject, granted_at, points, programme_version, event_id)
    SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:rules AS text[]), CAST(:subjects AS text[]),
                         CAST(:granted_ats AS timestamptz[]), CAST(:points AS bigint[]),
                         CAST(:versions AS integer[]), CAST(:event_ids AS text[]))
    ON CONFLICT (customer_id, rule, subject) DO NOTHING
    RETURNING customer_id, rule, subject
""")
_GRANTED = text("""
    SELECT customer_id, rule, subject FROM rule_grants
    WHERE (customer_id, rule, subject) IN (
        SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:rules AS text[]), CAST(:subjects AS text[])))
""")
_RECENT_GRANTS = text("""
    SELECT customer_id, granted_at FROM rule_grants
    WHERE customer_id = ANY(CAST(:ids AS text[])) AND rule = :rule AND granted_at > :since
""")
_ADD_FINGERPRINTS = text("""
    INSERT INTO member_fingerprints (customer_id, kind, digest)
    SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:kinds AS text[]), CAST(:digests AS bytea[]))
    ON CONFLICT DO NOTHING
""")
_FINGERPRINTS = text("""
    SELECT customer_id, kind, digest FROM member_fingerprints WHERE customer_id = ANY(CAST(:ids AS text[]))
""")
_FORGET_FINGERPRINTS = text("DELETE FROM member_fingerprints WHERE customer_id = ANY(CAST(:ids AS text[]))")
_ADD_REFERRALS = text("""
    INSERT INTO referrals (referee_id, referrer_id, registered_at, status, reason)
    SELECT * FROM unnest(CAST(:referee_ids AS text[]), CAST(:referrer_ids AS text[]),
                         CAST(:registered_ats AS timestamptz[]), CAST(:statuses AS text[]), CAST(:reasons AS text[]))
    ON CONFLICT (referee_id) DO NOTHING
""")
_PENDING_REFERRALS = text("""
    SELECT referee_id, referrer_id FROM referrals
    WHERE referee_id = ANY(CAST(:ids AS text[])) AND status = 'pending'
""")
_SETTLE_REFERRALS = text("""
    UPDATE referrals r SET status = t.status, reason = t.reason, paid_at = t.paid_at, order_id = t.order_id
    FROM unnest(CAST(:referee_ids AS text[]), CAST(:statuses AS text[]), CAST(:reasons AS text[]),
                CAST(:paid_ats AS timestamptz[]), CAST(:order_ids AS text[]))
         AS t(referee_id, status, reason, paid_at, order_id)
    WHERE r.referee_id = t.referee_id AND r.status = 'pending'
""")
_REFERRALS_BY = text("""
    SELECT referee_id, registered_at, status, reason, paid_at FROM referrals
    WHERE referrer_id = :referrer ORDER BY registered_at DESC, referee_id LIMIT :limit
""")
_EARLIER_PAID = text("""
    SELECT DISTINCT customer_id FROM orders
    WHERE customer_id = ANY(CAST(:ids AS text[])) AND paid_at IS NOT NULL
      AND NOT (order_id = ANY(CAST(:batch AS text[])))
""")


def _columns(rows: Sequence[tuple[Any, ...]], names: Sequence[str]) -> dict[str, list[Any]]:
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


class RulesSql(Sql):
    async def record_grants(self, grants: Sequence[tuple[str, str, str, datetime, int, int, str | None]]
                            ) -> set[tuple[str, str, str]]:
        """Write ``(customer, rule, subject, granted at, points, version, event id)`` rows; the keys that
        were new (a key granted before, or twice in the list, is not written again)."""
        if not grants:
            return set()
        result = await self.conn.execute(_RECORD_GRANTS, _columns(grants, (
            "customer_ids", "rules", "subjects", "granted_ats", "points", "versions", "event_ids")))
        return {(row.customer_id, row.rule, row.subject) for row in result}

    async def granted(self, keys: Iterable[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        """Which of these ``(customer, rule, subject)`` were granted already."""
        keys = list(set(keys))
        if not keys:
            return set()
        result = await self.conn.execute(_GRANTED, _columns(keys, ("customer_ids", "rules", "subjects")))
        return {(row.customer_id, row.rule, row.subject) for row in result}

    async def recent_grants(self, customer_ids: Iterable[str], rule: str, since: datetime
                            ) -> dict[str, list[datetime]]:
        """When this rule granted each member something after ``since`` (for the caps per period)."""
        found: dict[str, list[datetime]] = defaultdict(list)
        for row in await self.conn.execute(_RECENT_GRANTS, {"ids": sorted(set(customer_ids)), "rule": rule,
                                                            "since": since}):
            found[row.customer_id].append(row.granted_at)
        return found

    async def add_fingerprints(self, rows: Sequence[tuple[str, str, bytes]]) -> None:
        """Keep ``(customer, kind, digest)``; every digest a member was ever seen with stays until erasure."""
        if rows:
            await self.conn.execute(_ADD_FINGERPRINTS, _columns(list(set(rows)), ("customer_ids", "kinds", "digests")))

    async def fingerprints(self, customer_ids: Iterable[str]) -> dict[str, set[tuple[str, bytes]]]:
        found: dict[str, set[tuple[str, bytes]]] = defaultdict(set)
        ids = sorted(set(customer_ids))
        if ids:
            for row in await self.conn.execute(_FINGERPRINTS, {"ids": ids}):
                found[row.customer_id].add((row.kind, bytes(row.digest)))
        return found

    async def forget_fingerprints(self, customer_ids: Sequence[str]) -> None:
        if customer_ids:
            await self.conn.execute(_FORGET_FINGERPRINTS, {"ids": list(customer_ids)})

    async def add_referrals(self, rows: Sequence[tuple[str, str, datetime, str, str | None]]) -> None:
        """``(referee, referrer, registered at, status, reason)``; the first registration of a referee wins."""
        if rows:
            await self.conn.execute(_ADD_REFERRALS, _columns(rows, (
                "referee_ids", "referrer_ids", "registered_ats", "statuses", "reasons")))

    async def pending_referrals(self, referee_ids: Iterable[str]) -> dict[str, str]:
        """The pending referrals of these referees: referee → referrer. Not locked here: every write to a
        referral happens under its referee's account lock (lock order: accounts first)."""
        ids = sorted(set(referee_ids))
        if not ids:
            return {}
        return {row.referee_id: row.referrer_id for row in await self.conn.execute(_PENDING_REFERRALS, {"ids": ids})}

    async def settle_referrals(self, rows: Sequence[tuple[str, str, str | None, datetime | None, str | None]]
                               ) -> None:
        """``(referee, status, reason, paid at, order id)`` for referrals still pending."""
        if rows:
            await self.conn.execute(_SETTLE_REFERRALS, _columns(rows, (
                "referee_ids", "statuses", "reasons", "paid_ats", "order_ids")))

    async def referrals_by(self, referrer_id: str, limit: int) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in await self.conn.execute(_REFERRALS_BY,
                                                                      {"referrer": referrer_id, "limit": limit})]

    async def with_earlier_paid_orders(self, customer_ids: Iterable[str], batch: Iterable[str]) -> set[str]:
        """The members who have a paid order other than those of ``batch``."""
        ids = sorted(set(customer_ids))
        if not ids:
            return set()
        return {row.customer_id for row in await self.conn.execute(_EARLIER_PAID, {"ids": ids,
                                                                                   "batch": list(batch)})}
