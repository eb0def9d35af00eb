"""Orders, the points spent on them (held, applied and voided order discounts, gifts), rolling spend
and win-backs, with set-based SQL. Repositories never commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import text

from crm_loyalty.domain.earning import months_later
from crm_loyalty.domain.ledger import Lot
from crm_loyalty.domain.members import Spent
from crm_loyalty.domain.programme import Programme
from crm_loyalty.repository.base import Sql

_KNOWN_ORDERS = text("SELECT order_id FROM orders WHERE order_id = ANY(CAST(:ids AS text[]))")
_INSERT_ORDERS = text("""
    INSERT INTO orders (order_id, customer_id, status, currency, total_amount, points_value, paid_at,
                        earned_points, lines, programme_version, tier, coupon_discount)
    SELECT * FROM unnest(CAST(:order_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:statuses AS text[]),
                         CAST(:currencies AS text[]), CAST(:totals AS numeric[]), CAST(:points_values AS numeric[]),
                         CAST(:paid_ats AS timestamptz[]), CAST(:earned AS bigint[]), CAST(:lines AS jsonb[]),
                         CAST(:versions AS integer[]), CAST(:tiers AS text[]), CAST(:coupon_discounts AS numeric[]))
    ON CONFLICT (order_id) DO NOTHING
""")
_PENDING_LOTS_OF_ORDERS = text("""
    SELECT lot_id, customer_id, order_id FROM lots
    WHERE order_id = ANY(CAST(:ids AS text[])) AND kind = 'earn' AND state = 'pending'
""")
_COMPLETE_ORDERS = text("""
    UPDATE orders SET status = 'completed' WHERE order_id = ANY(CAST(:ids AS text[])) AND status = 'paid'
""")
_ORDERS_FOR_UPDATE = text("""
    SELECT order_id, customer_id, status, total_amount, refunded_amount, earned_points, reversed_points, lines
    FROM orders WHERE order_id = ANY(CAST(:ids AS text[])) ORDER BY order_id FOR UPDATE
""")
_SAVE_ORDER = text("""
    INSERT INTO orders (order_id, customer_id, status, currency, total_amount, refunded_amount, reversed_points, lines)
    VALUES (:order_id, :customer_id, :status, :currency, :total, :refunded, :reversed, CAST(:lines AS jsonb))
    ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, refunded_amount = excluded.refunded_amount,
        reversed_points = excluded.reversed_points, lines = excluded.lines
""")
_ORDER_STATUS = text("SELECT status, customer_id FROM orders WHERE order_id = :order_id")
_LAST_WIN_BACK = text("""
    SELECT customer_id, max(granted_at) AS last FROM win_backs
    WHERE customer_id = ANY(CAST(:ids AS text[])) GROUP BY customer_id
""")
_RECORD_WIN_BACK = text("""
    INSERT INTO win_backs (customer_id, granted_at, reward) VALUES (:customer_id, :at, CAST(:reward AS jsonb))
    ON CONFLICT DO NOTHING
""")
_SPENT = text("""
    SELECT r.redemption_id, r.customer_id, r.order_id, r.points, r.points_returned, r.status, r.currency,
           r.money_value, rl.lot_id, rl.points - rl.returned AS lot_left
    FROM redemptions r JOIN redemption_lots rl USING (redemption_id)
    WHERE r.redemption_id = ANY(CAST(:ids AS text[])) ORDER BY r.created_at, r.redemption_id, rl.lot_id
    FOR UPDATE OF r
""")
_DISCOUNTS_ON_ORDERS = text("""
    SELECT redemption_id FROM redemptions r
    JOIN unnest(CAST(:order_ids AS text[]), CAST(:customer_ids AS text[])) AS t(order_id, customer_id)
      USING (order_id, customer_id)
    WHERE r.kind = 'order_discount' AND r.status = ANY(CAST(:statuses AS text[]))
""")
_RETURN_TO_REDEMPTION = text("""
    UPDATE redemptions SET points_returned = points_returned + :points,
                           status = COALESCE(CAST(:status AS text), status),
                           resolved_at = COALESCE(CAST(:at AS timestamptz), resolved_at),
                           void_reason = COALESCE(CAST(:void_reason AS text), void_reason)
    WHERE redemption_id = :redemption_id
""")
_RETURN_TO_LOT = text("""
    UPDATE redemption_lots SET returned = returned + :points WHERE redemption_id = :redemption_id AND lot_id = :lot_id
""")
_APPLY_DISCOUNTS = text("""
    UPDATE redemptions SET status = 'applied', resolved_at = :at
    WHERE redemption_id = ANY(CAST(:ids AS text[])) AND status = 'held'
""")
_INSERT_REDEMPTION = text("""
    WITH redemption AS (
        INSERT INTO redemptions (redemption_id, customer_id, kind, points, currency, money_value, order_id,
                                 gift_sku, reason, actor, created_at, status, resolved_at)
        VALUES (:redemption_id, :customer_id, :kind, :points, :currency, :money_value, :order_id, :gift_sku,
                :reason, :actor, :created_at, :status, :resolved_at)
    )
    INSERT INTO redemption_lots (redemption_id, lot_id, points)
    SELECT :redemption_id, * FROM unnest(CAST(:lot_ids AS bigint[]), CAST(:lot_points AS bigint[]))
""")
_ROLLING = text("""
    SELECT customer_id, COALESCE(sum(total_amount - refunded_amount), 0) AS spend,
           count(*) FILTER (WHERE refunded_amount < total_amount) AS orders
    FROM orders
    WHERE customer_id = ANY(CAST(:ids AS text[])) AND currency = :currency AND paid_at IS NOT NULL
      AND status <> 'cancelled' AND paid_at > :since AND paid_at <= :until
    GROUP BY customer_id
""")


class OrdersSql(Sql):
    # -- orders -----------------------------------------------------------------------------------

    async def known_orders(self, order_ids: Sequence[str]) -> set[str]:
        return {row.order_id for row in await self.conn.execute(_KNOWN_ORDERS, {"ids": list(order_ids)})}

    async def insert_paid_orders(self, rows: dict[str, list[Any]]) -> None:
        """Paid orders, column by column (``order_ids``, ``customer_ids``, ``statuses``, ``currencies``,
        ``totals``, ``points_values``, ``paid_ats``, ``earned``, ``lines`` (dicts), ``versions``, ``tiers``,
        ``coupon_discounts``). ``totals`` are after coupon discounts: what refunds and the rolling spend count."""
        if rows.get("order_ids"):
            await self.conn.execute(_INSERT_ORDERS, {
                **rows, "lines": [orjson.dumps(lines).decode() for lines in rows["lines"]]})

    async def complete_orders(self, order_ids: Sequence[str]) -> None:
        await self.conn.execute(_COMPLETE_ORDERS, {"ids": list(order_ids)})

    async def pending_lots_of_orders(self, order_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        """The pending earn lot of each of these orders: order id → (lot id, customer id)."""
        return {row.order_id: (row.lot_id, row.customer_id)
                for row in await self.conn.execute(_PENDING_LOTS_OF_ORDERS, {"ids": list(order_ids)})}

    async def orders_for_update(self, order_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """These orders, locked, as dicts (``lines`` decoded)."""
        orders = {}
        for row in await self.conn.execute(_ORDERS_FOR_UPDATE, {"ids": list(order_ids)}):
            order = dict(row._mapping)
            if not isinstance(order["lines"], list):
                order["lines"] = orjson.loads(order["lines"])
            orders[row.order_id] = order
        return orders

    async def save_order(self, order: dict[str, Any], currency: str) -> None:
        await self.conn.execute(_SAVE_ORDER, {
            "order_id": order["order_id"], "customer_id": order["customer_id"], "status": order["status"],
            "currency": currency, "total": order["total_amount"], "refunded": order["refunded_amount"],
            "reversed": order["reversed_points"], "lines": orjson.dumps(order["lines"]).decode()})

    async def order_known(self, order_id: str) -> bool:
        return (await self.conn.execute(_ORDER_STATUS, {"order_id": order_id})).first() is not None

    async def rolling_spend(self, customer_ids: Sequence[str], programme: Programme,
                            until: datetime) -> dict[str, tuple[Decimal, int]]:
        """Paid spend net of refunds and paid-order count in the tier window ending at ``until``."""
        since = months_later(until, -programme.tiers.window_months)
        result = {c: (Decimal(0), 0) for c in customer_ids}
        for row in await self.conn.execute(_ROLLING, {"ids": list(customer_ids), "currency": programme.tiers.currency,
                                                      "since": since, "until": until}):
            result[row.customer_id] = (row.spend, row.orders)
        return result

    # -- win-backs --------------------------------------------------------------------------------

    async def last_win_backs(self, customer_ids: Sequence[str]) -> dict[str, datetime]:
        return {row.customer_id: row.last
                for row in await self.conn.execute(_LAST_WIN_BACK, {"ids": list(customer_ids)})}

    async def record_win_back(self, customer_id: str, at: datetime, reward: dict[str, Any]) -> None:
        await self.conn.execute(_RECORD_WIN_BACK, {"customer_id": customer_id, "at": at,
                                                   "reward": orjson.dumps(reward).decode()})

    # -- points spent: held, applied and voided discounts, gifts ----------------------------------

    async def discounts_on_orders(self, pairs: Iterable[tuple[str, str]], statuses: Sequence[str]
                                  ) -> dict[str, Spent]:
        """The order discounts each customer took on each order (``(order id, customer id)`` pairs), in
        these states, locked, oldest first. Discounts other customers took on the same order id are
        not among them."""
        pairs = sorted(set(pairs))
        if not pairs:
            return {}
        ids = [row.redemption_id for row in await self.conn.execute(_DISCOUNTS_ON_ORDERS, {
            "order_ids": [o for o, _ in pairs], "customer_ids": [c for _, c in pairs], "statuses": list(statuses)})]
        return await self.spent_of(ids)

    async def spent_of(self, redemption_ids: Sequence[str]) -> dict[str, Spent]:
        spent: dict[str, Spent] = {}
        if not redemption_ids:
            return spent
        for row in await self.conn.execute(_SPENT, {"ids": list(redemption_ids)}):
            entry = spent.get(row.redemption_id)
            if entry is None:
                entry = spent[row.redemption_id] = Spent(row.redemption_id, row.customer_id, row.order_id,
                                                         row.points, row.points_returned, row.status, row.currency,
                                                         row.money_value, [])
            entry.lots.append((row.lot_id, row.lot_left))
        return spent

    async def record_given_back(self, spent: Spent, points: int, restored: Sequence[tuple[Lot, int]], *,
                                void_reason: str | None = None, at: datetime | None = None) -> None:
        """Write what ``Book.give_back`` returned of a redemption (and, with ``void_reason``, void it)."""
        await self.conn.execute(_RETURN_TO_REDEMPTION, {
            "redemption_id": spent.redemption_id, "points": points, "status": "voided" if void_reason else None,
            "at": at if void_reason else None, "void_reason": void_reason})
        for lot, amount in restored:
            if lot.lot_id is not None:
                await self.conn.execute(_RETURN_TO_LOT, {"redemption_id": spent.redemption_id, "lot_id": lot.lot_id,
                                                         "points": amount})
        spent.returned += points
        if void_reason:
            spent.status = "voided"
        back = {lot.lot_id: amount for lot, amount in restored if lot.lot_id is not None}
        spent.lots = [(lot_id, left - back.get(lot_id, 0)) for lot_id, left in spent.lots]

    async def apply_discounts(self, redemption_ids: Sequence[str], at: datetime) -> None:
        if redemption_ids:
            await self.conn.execute(_APPLY_DISCOUNTS, {"ids": list(redemption_ids), "at": at})

    async def insert_redemption(self, redemption: dict[str, Any], taken: Sequence[tuple[Lot, int]]) -> None:
        """A redemption (the columns of ``redemptions`` by name) and the lots it spent."""
        await self.conn.execute(_INSERT_REDEMPTION, {
            **redemption, "lot_ids": [lot.lot_id for lot, _ in taken], "lot_points": [points for _, points in taken]})
