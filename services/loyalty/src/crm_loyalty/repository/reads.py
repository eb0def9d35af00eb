"""What the API shows and the metrics count: accounts, expiries, the ledger, redemptions, totals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text

from crm_loyalty.repository.base import Sql

_ACCOUNT = text("""
    SELECT a.customer_id, a.tier, a.tier_since, a.below_tier_since, a.available, a.pending, a.debt,
           a.lifetime_earned,
           (SELECT COALESCE(sum(remaining), 0) FROM lots l WHERE l.customer_id = a.customer_id
              AND l.state = 'available' AND l.expires_at <= :horizon) AS expiring_30d
    FROM accounts a WHERE a.customer_id = :customer_id
""")
_EXPIRIES = text("""
    SELECT expires_at, sum(remaining) AS points FROM lots
    WHERE customer_id = :customer_id AND state = 'available' AND remaining > 0
    GROUP BY expires_at ORDER BY expires_at LIMIT :limit
""")
_LEDGER = text("""
    SELECT entry_id, kind, points, available_delta, pending_delta, debt_delta, reason, order_id, redemption_id,
           actor, ticket_id, campaign, business_at, recorded_at
    FROM ledger WHERE customer_id = :customer_id AND entry_id < :before
      AND (CAST(:kind AS text) IS NULL OR kind = :kind)
    ORDER BY entry_id DESC LIMIT :limit
""")
_BALANCE_AS_OF = text("""
    SELECT EXISTS (SELECT 1 FROM accounts WHERE customer_id = :customer_id) AS known,
           COALESCE(sum(available_delta), 0) AS available, COALESCE(sum(pending_delta), 0) AS pending,
           COALESCE(sum(debt_delta), 0) AS debt
    FROM ledger WHERE customer_id = :customer_id AND business_at <= :as_of
""")
_REDEMPTIONS = text("""
    SELECT redemption_id, customer_id, kind, points, points_returned, money_value, currency, order_id, gift_sku,
           created_at, status, resolved_at, void_reason
    FROM redemptions WHERE customer_id = :customer_id ORDER BY created_at DESC, redemption_id LIMIT :limit
""")
_LAST_ENTRY = text("SELECT max(entry_id) FROM ledger WHERE customer_id = :customer_id")
_BALANCES = text("""
    SELECT COALESCE(sum(available), 0) AS available, COALESCE(sum(pending), 0) AS pending,
           COALESCE(sum(debt), 0) AS debt, count(*) AS members
    FROM accounts
""")
_TOTALS = text("""
    SELECT COALESCE(sum(points) FILTER (WHERE kind IN ('earn', 'bonus') AND points > 0
                                           OR kind = 'adjust' AND points > 0), 0) AS issued,
           COALESCE(-sum(points) FILTER (WHERE kind = 'redeem' AND points < 0), 0) AS redeemed,
           COALESCE(sum(points) FILTER (WHERE kind = 'refund_of_spent' AND points > 0), 0) AS given_back,
           COALESCE(-sum(points) FILTER (WHERE kind = 'expire' AND points < 0), 0) AS expired,
           COALESCE(-sum(points) FILTER (WHERE kind = 'reverse' AND points < 0), 0) AS reversed,
           COALESCE(-sum(points) FILTER (WHERE kind = 'adjust' AND points < 0), 0) AS deducted
    FROM ledger
""")


class ReadsSql(Sql):
    async def account_view(self, customer_id: str, horizon: datetime) -> dict[str, Any] | None:
        """The account's balances and tier, with the points expiring by ``horizon``."""
        row = (await self.conn.execute(_ACCOUNT, {"customer_id": customer_id, "horizon": horizon})).first()
        return dict(row._mapping) if row is not None else None

    async def expiries(self, customer_id: str, limit: int) -> list[tuple[datetime, int]]:
        return [(row.expires_at, int(row.points))
                for row in await self.conn.execute(_EXPIRIES, {"customer_id": customer_id, "limit": limit})]

    async def ledger_page(self, customer_id: str, *, before: int, kind: str | None, limit: int
                          ) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in await self.conn.execute(_LEDGER, {
            "customer_id": customer_id, "before": before, "kind": kind, "limit": limit})]

    async def balance_as_of(self, customer_id: str, as_of: datetime) -> dict[str, Any]:
        """``known`` (whether the account exists) and the ledger sums up to ``as_of``."""
        return dict((await self.conn.execute(_BALANCE_AS_OF, {"customer_id": customer_id, "as_of": as_of}))
                    .one()._mapping)

    async def redemptions_of(self, customer_id: str, limit: int) -> list[dict[str, Any]]:
        return [dict(row._mapping)
                for row in await self.conn.execute(_REDEMPTIONS, {"customer_id": customer_id, "limit": limit})]

    async def last_entry_id(self, customer_id: str) -> int | None:
        return (await self.conn.execute(_LAST_ENTRY, {"customer_id": customer_id})).scalar()

    async def totals(self) -> dict[str, int]:
        """Database-wide: balances summed over accounts, members, and each counter of the ledger."""
        balances = (await self.conn.execute(_BALANCES)).one()
        totals = (await self.conn.execute(_TOTALS)).one()
        return {**{name: int(value) for name, value in totals._mapping.items()},
                **{name: int(value) for name, value in balances._mapping.items()}}
