"""Coupon pools, the codes issued from them and their uses by orders, with set-based SQL.

Locks: a pool row before its coupons' rows (both sorted), after the members' accounts, as
everywhere in this service. Repositories never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text

from crm_loyalty.repository.base import Sql

POOL_COLUMNS = ("pool_id", "name", "discount_kind", "percent", "amount", "currency", "min_spend", "categories",
                "prefix", "valid_from", "valid_until", "validity_days", "per_customer_limit", "global_limit",
                "active")
_POOL_SELECT = ("SELECT pool_id, name, discount_kind, percent, amount, currency, min_spend, categories, prefix, "
                "valid_from, valid_until, validity_days, per_customer_limit, global_limit, issued_count, used_count, "
                "active, version, created_by, created_at, updated_at FROM coupon_pools")
_COUPON_SELECT = ("SELECT coupon_id, code, pool_id, customer_id, issued_by, issued_at, valid_from, valid_until, "
                  "max_uses, uses, status, revoked_at, revoked_by, revoke_reason FROM coupons")

_INSERT_POOL = text("""
    INSERT INTO coupon_pools (pool_id, name, discount_kind, percent, amount, currency, min_spend, categories, prefix,
                              valid_from, valid_until, validity_days, per_customer_limit, global_limit, active,
                              created_by, created_at, updated_at)
    VALUES (:pool_id, :name, :discount_kind, :percent, :amount, :currency, :min_spend, CAST(:categories AS text[]),
            :prefix, :valid_from, :valid_until, :validity_days, :per_customer_limit, :global_limit, :active,
            :created_by, :at, :at)
    ON CONFLICT (pool_id) DO NOTHING RETURNING pool_id
""")
_UPDATE_POOL = text("""
    UPDATE coupon_pools SET name = :name, discount_kind = :discount_kind, percent = :percent, amount = :amount,
        currency = :currency, min_spend = :min_spend, categories = CAST(:categories AS text[]), prefix = :prefix,
        valid_from = :valid_from, valid_until = :valid_until, validity_days = :validity_days,
        per_customer_limit = :per_customer_limit, global_limit = :global_limit, active = :active,
        version = version + 1, updated_at = :at
    WHERE pool_id = :pool_id
""")
_POOL = text(f"{_POOL_SELECT} WHERE pool_id = :pool_id")
_POOL_FOR_UPDATE = text(f"{_POOL_SELECT} WHERE pool_id = :pool_id FOR UPDATE")
_POOLS = text(f"{_POOL_SELECT} WHERE pool_id > :after ORDER BY pool_id LIMIT :limit")
_LOCK_POOLS = text(f"{_POOL_SELECT} WHERE pool_id = ANY(CAST(:ids AS text[])) ORDER BY pool_id FOR UPDATE")
_COUNT_ISSUED = text("UPDATE coupon_pools SET issued_count = issued_count + :count WHERE pool_id = :pool_id")
_INSERT_COUPONS = text("""
    INSERT INTO coupons (coupon_id, code, pool_id, customer_id, issued_by, issued_at, valid_from, valid_until,
                         max_uses)
    SELECT t.*, :pool_id, :customer_id, :issued_by, :issued_at, :valid_from, :valid_until, :max_uses
    FROM unnest(CAST(:coupon_ids AS text[]), CAST(:codes AS text[])) AS t(coupon_id, code)
    ON CONFLICT (code) DO NOTHING RETURNING coupon_id
""")
_COUPONS_BY_CODE = text(f"{_COUPON_SELECT} WHERE code = ANY(CAST(:codes AS text[])) ORDER BY coupon_id")
_LOCK_COUPONS = text(f"{_COUPON_SELECT} WHERE coupon_id = ANY(CAST(:ids AS text[])) ORDER BY coupon_id FOR UPDATE")
_COUPON = text(f"{_COUPON_SELECT} WHERE coupon_id = :coupon_id")
_CUSTOMER_COUPONS = text(f"""
    {_COUPON_SELECT} WHERE customer_id = :customer_id ORDER BY issued_at DESC, coupon_id LIMIT :limit
""")
_USES_OF_COUPON = text("""
    SELECT order_id, customer_id, status, reason, discount, currency, at, released_at FROM coupon_uses
    WHERE coupon_id = :coupon_id ORDER BY at, order_id
""")
_CUSTOMER_POOL_USES = text("""
    SELECT u.customer_id, c.pool_id, count(*) AS uses
    FROM coupon_uses u JOIN coupons c USING (coupon_id)
    JOIN unnest(CAST(:customer_ids AS text[]), CAST(:pool_ids AS text[])) AS t(customer_id, pool_id)
      ON t.customer_id = u.customer_id AND t.pool_id = c.pool_id
    WHERE u.status = 'applied'
    GROUP BY u.customer_id, c.pool_id
""")
_RECORD_USES = text("""
    INSERT INTO coupon_uses (coupon_id, order_id, customer_id, status, reason, discount, currency, at)
    SELECT * FROM unnest(CAST(:coupon_ids AS text[]), CAST(:order_ids AS text[]), CAST(:customer_ids AS text[]),
                         CAST(:statuses AS text[]), CAST(:reasons AS text[]), CAST(:discounts AS numeric[]),
                         CAST(:currencies AS text[]), CAST(:ats AS timestamptz[]))
    ON CONFLICT (coupon_id, order_id) DO NOTHING
""")
_COUNT_COUPON_USES = text("""
    UPDATE coupons c SET uses = c.uses + t.delta
    FROM unnest(CAST(:ids AS text[]), CAST(:deltas AS integer[])) AS t(coupon_id, delta)
    WHERE c.coupon_id = t.coupon_id
""")
_COUNT_POOL_USES = text("""
    UPDATE coupon_pools p SET used_count = p.used_count + t.delta
    FROM unnest(CAST(:ids AS text[]), CAST(:deltas AS integer[])) AS t(pool_id, delta)
    WHERE p.pool_id = t.pool_id
""")
_APPLIED_USES_OF_ORDERS = text("""
    SELECT u.coupon_id, u.order_id, u.customer_id, c.pool_id FROM coupon_uses u JOIN coupons c USING (coupon_id)
    WHERE u.order_id = ANY(CAST(:ids AS text[])) AND u.status = 'applied'
""")
_RELEASE_USES = text("""
    UPDATE coupon_uses u SET status = 'released', released_at = :at
    FROM unnest(CAST(:coupon_ids AS text[]), CAST(:order_ids AS text[])) AS t(coupon_id, order_id)
    WHERE u.coupon_id = t.coupon_id AND u.order_id = t.order_id AND u.status = 'applied'
""")
_REVOKE = text("""
    UPDATE coupons SET status = 'revoked', revoked_at = :at, revoked_by = :actor, revoke_reason = :reason
    WHERE coupon_id = :coupon_id AND status = 'active'
""")
_BIRTHDAY_COUPONS = text("""
    SELECT DISTINCT customer_id FROM coupons
    WHERE customer_id = ANY(CAST(:ids AS text[])) AND issued_by = 'birthday'
      AND issued_at >= :year_start AND issued_at < :year_end
""")
# Applied counts every use ever applied (released ones too), so each outcome only goes up.
_USE_TOTALS = text("""
    SELECT count(*) FILTER (WHERE status IN ('applied', 'released')) AS applied,
           count(*) FILTER (WHERE status = 'released') AS released,
           count(*) FILTER (WHERE status = 'refused') AS refused
    FROM coupon_uses
""")


class CouponsSql(Sql):
    # -- pools ------------------------------------------------------------------------------------

    async def insert_pool(self, pool: dict[str, Any], *, actor: str, at: datetime) -> bool:
        """A new pool (the columns of ``POOL_COLUMNS``); False if its id is taken."""
        result = await self.conn.execute(_INSERT_POOL, {**{c: pool.get(c) for c in POOL_COLUMNS},
                                                        "created_by": actor, "at": at})
        return result.first() is not None

    async def update_pool(self, pool: dict[str, Any], *, at: datetime) -> None:
        await self.conn.execute(_UPDATE_POOL, {**{c: pool.get(c) for c in POOL_COLUMNS}, "at": at})

    async def pool(self, pool_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        row = (await self.conn.execute(_POOL_FOR_UPDATE if lock else _POOL, {"pool_id": pool_id})).first()
        return dict(row._mapping) if row is not None else None

    async def pools(self, limit: int, after: str = "") -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in await self.conn.execute(_POOLS, {"limit": limit, "after": after})]

    async def lock_pools(self, pool_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """These pools, locked in id order."""
        if not pool_ids:
            return {}
        return {row.pool_id: dict(row._mapping)
                for row in await self.conn.execute(_LOCK_POOLS, {"ids": sorted(set(pool_ids))})}

    # -- coupons ----------------------------------------------------------------------------------

    async def insert_coupons(self, pool_id: str, pairs: Sequence[tuple[str, str]], *, customer_id: str | None,
                             issued_by: str, issued_at: datetime, valid_from: datetime,
                             valid_until: datetime | None, max_uses: int | None) -> set[str]:
        """Coupons ``(coupon id, code)`` of one pool; the ids inserted (a code already taken is not)."""
        result = await self.conn.execute(_INSERT_COUPONS, {
            "coupon_ids": [i for i, _ in pairs], "codes": [c for _, c in pairs], "pool_id": pool_id,
            "customer_id": customer_id, "issued_by": issued_by, "issued_at": issued_at, "valid_from": valid_from,
            "valid_until": valid_until, "max_uses": max_uses})
        return {row.coupon_id for row in result}

    async def count_issued(self, pool_id: str, count: int) -> None:
        await self.conn.execute(_COUNT_ISSUED, {"pool_id": pool_id, "count": count})

    async def coupons_by_code(self, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Coupons by their (normalized) codes, not locked: code → row."""
        if not codes:
            return {}
        return {row.code: dict(row._mapping)
                for row in await self.conn.execute(_COUPONS_BY_CODE, {"codes": list(set(codes))})}

    async def lock_coupons(self, coupon_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not coupon_ids:
            return {}
        return {row.coupon_id: dict(row._mapping)
                for row in await self.conn.execute(_LOCK_COUPONS, {"ids": sorted(set(coupon_ids))})}

    async def coupon(self, coupon_id: str) -> dict[str, Any] | None:
        row = (await self.conn.execute(_COUPON, {"coupon_id": coupon_id})).first()
        return dict(row._mapping) if row is not None else None

    async def customer_coupons(self, customer_id: str, limit: int) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in await self.conn.execute(
            _CUSTOMER_COUPONS, {"customer_id": customer_id, "limit": limit})]

    async def revoke_coupon(self, coupon_id: str, *, actor: str, reason: str | None, at: datetime) -> bool:
        result = await self.conn.execute(_REVOKE, {"coupon_id": coupon_id, "actor": actor, "reason": reason,
                                                   "at": at})
        return result.rowcount > 0

    async def birthday_coupons_issued(self, customer_ids: Sequence[str], year_start: datetime,
                                      year_end: datetime) -> set[str]:
        """The members who got a birthday coupon in ``[year_start, year_end)``."""
        if not customer_ids:
            return set()
        return {row.customer_id for row in await self.conn.execute(_BIRTHDAY_COUPONS, {
            "ids": list(customer_ids), "year_start": year_start, "year_end": year_end})}

    # -- uses -------------------------------------------------------------------------------------

    async def uses_of_coupon(self, coupon_id: str) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in await self.conn.execute(_USES_OF_COUPON, {"coupon_id": coupon_id})]

    async def customer_pool_uses(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Applied uses per ``(customer id, pool id)``."""
        pairs = sorted(set(pairs))
        if not pairs:
            return {}
        return {(row.customer_id, row.pool_id): row.uses for row in await self.conn.execute(_CUSTOMER_POOL_USES, {
            "customer_ids": [c for c, _ in pairs], "pool_ids": [p for _, p in pairs]})}

    async def record_uses(self, uses: Sequence[dict[str, Any]]) -> None:
        """Uses (``coupon_id``, ``order_id``, ``customer_id``, ``status``, ``reason``, ``discount``,
        ``currency``, ``at``), one statement."""
        if not uses:
            return
        await self.conn.execute(_RECORD_USES, {
            "coupon_ids": [u["coupon_id"] for u in uses], "order_ids": [u["order_id"] for u in uses],
            "customer_ids": [u["customer_id"] for u in uses], "statuses": [u["status"] for u in uses],
            "reasons": [u["reason"] for u in uses], "discounts": [u["discount"] for u in uses],
            "currencies": [u["currency"] for u in uses], "ats": [u["at"] for u in uses]})

    async def count_uses(self, coupon_deltas: dict[str, int], pool_deltas: dict[str, int]) -> None:
        """Add these deltas to the coupons' ``uses`` and the pools' ``used_count`` (rows already locked)."""
        coupon_deltas = {k: v for k, v in coupon_deltas.items() if v}
        pool_deltas = {k: v for k, v in pool_deltas.items() if v}
        if coupon_deltas:
            await self.conn.execute(_COUNT_COUPON_USES, {"ids": list(coupon_deltas),
                                                         "deltas": list(coupon_deltas.values())})
        if pool_deltas:
            await self.conn.execute(_COUNT_POOL_USES, {"ids": list(pool_deltas), "deltas": list(pool_deltas.values())})

    async def applied_uses_of_orders(self, order_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not order_ids:
            return []
        return [dict(row._mapping) for row in await self.conn.execute(_APPLIED_USES_OF_ORDERS,
                                                                       {"ids": list(order_ids)})]

    async def release_uses(self, pairs: Sequence[tuple[str, str]], at: datetime) -> None:
        """Mark these ``(coupon id, order id)`` uses released."""
        if pairs:
            await self.conn.execute(_RELEASE_USES, {"coupon_ids": [c for c, _ in pairs],
                                                    "order_ids": [o for _, o in pairs], "at": at})

    async def coupon_use_totals(self) -> dict[str, int]:
        return dict((await self.conn.execute(_USE_TOTALS)).one()._mapping)
