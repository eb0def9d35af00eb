"""What the reports read: the liability the programme carries (points owed, rewards owed, coupons
outstanding), database-wide, in one snapshot of the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text

from crm_loyalty.repository.base import Sql

_POINTS = text("""
    SELECT COALESCE(sum(available), 0) AS available, COALESCE(sum(pending), 0) AS pending,
           COALESCE(sum(debt), 0) AS debt, count(*) FILTER (WHERE available > 0 OR pending > 0) AS members_owed,
           (SELECT COALESCE(sum(remaining), 0) FROM lots
              WHERE state = 'available' AND expires_at <= :soon) AS expiring_30d,
           (SELECT COALESCE(sum(remaining), 0) FROM lots
              WHERE state = 'available' AND expires_at <= :later) AS expiring_90d
    FROM accounts
""")

# Gifts redeemed but not yet delivered: the shop owes the goods (the points are spent).
_REWARDS_OWED = text("""
    SELECT fulfilment_status AS status, count(*) AS redemptions, COALESCE(sum(quantity), 0) AS units,
           COALESCE(sum(points - points_returned), 0) AS points
    FROM redemptions WHERE kind = 'reward' AND fulfilment_status IN ('requested', 'shipped')
    GROUP BY fulfilment_status
""")
_CASH_DUE = text("""
    SELECT cash_currency AS currency, sum(cash_due) AS amount
    FROM redemptions WHERE kind = 'reward' AND fulfilment_status IN ('requested', 'shipped') AND cash_due IS NOT NULL
    GROUP BY cash_currency
""")
# A coupon is outstanding while it can still be used: active, within its validity, with a use left.
# Uses left are counted per pool: a personal code has its own (max_uses - uses), the generic codes
# of a pool share the pool's global uses left (counted once, not per code), and the pool's global
# limit caps them all; generic codes of a pool without a global limit have unbounded uses.
_COUPONS = text("""
    WITH usable AS (
        SELECT c.pool_id, c.customer_id IS NULL AS generic, c.max_uses - c.uses AS own_uses_left
        FROM coupons c JOIN coupon_pools p USING (pool_id)
        WHERE c.status = 'active' AND p.active AND (c.valid_until IS NULL OR c.valid_until > :at)
          AND (c.max_uses IS NULL OR c.uses < c.max_uses)
          AND (p.global_limit IS NULL OR p.used_count < p.global_limit)
    ), by_pool AS (
        SELECT pool_id, count(*) AS coupons, count(*) FILTER (WHERE generic) AS generic,
               COALESCE(sum(own_uses_left), 0) AS personal_uses, bool_or(generic) AS has_generic
        FROM usable GROUP BY pool_id
    ), bounded AS (
        SELECT p.discount_kind, p.currency, p.amount, b.coupons, b.generic,
               CASE WHEN p.global_limit IS NULL THEN b.personal_uses
                    ELSE LEAST(p.global_limit - p.used_count,
                               b.personal_uses + CASE WHEN b.has_generic THEN p.global_limit - p.used_count
                                                      ELSE 0 END) END AS uses_left,
               b.has_generic AND p.global_limit IS NULL AS unbounded
        FROM by_pool b JOIN coupon_pools p USING (pool_id)
    )
    SELECT discount_kind, currency, sum(coupons) AS coupons, sum(generic) AS generic,
           sum(uses_left) AS uses_left, count(*) FILTER (WHERE unbounded) AS unbounded_pools,
           COALESCE(sum(amount * uses_left) FILTER (WHERE discount_kind = 'amount'), 0) AS face_value
    FROM bounded GROUP BY discount_kind, currency ORDER BY discount_kind, currency
""")


class ReportsSql(Sql):
    async def points_liability(self, soon: datetime, later: datetime) -> dict[str, Any]:
        """The points owed: available, pending and debt summed over accounts, the members owed
        any, and the available points that expire by ``soon`` and by ``later``."""
        row = (await self.conn.execute(_POINTS, {"soon": soon, "later": later})).one()
        return {name: int(value) for name, value in row._mapping.items()}

    async def rewards_owed(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Reward redemptions not yet delivered, by fulfilment status, and the cash due on them per
        currency (points + cash rewards)."""
        owed = [dict(row._mapping) for row in await self.conn.execute(_REWARDS_OWED)]
        cash = {row.currency: row.amount for row in await self.conn.execute(_CASH_DUE)}
        return owed, cash

    async def coupons_outstanding(self, at: datetime) -> list[dict[str, Any]]:
        """Coupons still usable at ``at``, by discount kind and currency: how many (generic ones
        among them), the bounded uses left, the pools whose generic codes have unbounded uses, and
        the face value of the bounded uses left of fixed-amount coupons."""
        return [dict(row._mapping) for row in await self.conn.execute(_COUPONS, {"at": at})]
