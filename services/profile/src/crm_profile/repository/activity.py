"""What the events of the other services change in the archive: orders and their statistics, the
timeline, category views, and the copies of tier and churn level (set-based: one statement per
kind of row for a whole batch)."""

from __future__ import annotations

import orjson
from sqlalchemy import text

from crm_profile.domain.records import CategoryView, CustomerStats, OrderFact, RefundRequest, TimelineEntry
from crm_profile.repository.base import Queries

# Paid orders: the orders table makes each order count once whatever the event id (a placed
# order becomes paid once); the customer's statistics grow by what was really new, and the
# categories bought come from the items. One statement for the whole run.
_APPLY_PAID_ORDERS = text("""
    WITH incoming AS (
        SELECT DISTINCT ON (order_id) *
        FROM unnest(CAST(:order_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:currencies AS text[]),
                    CAST(:amounts AS numeric[]), CAST(:paid_ats AS timestamptz[]), CAST(:channels AS text[]),
                    CAST(:items AS text[]))
             AS t(order_id, customer_id, currency, total_amount, paid_at, channel, items)
        ORDER BY order_id
    ), newly_paid AS (
        INSERT INTO orders AS o (order_id, customer_id, currency, total_amount, paid_at, status, channel, items)
        SELECT order_id, customer_id, currency, total_amount, paid_at, 'paid', channel, CAST(items AS jsonb)
        FROM incoming
        ON CONFLICT (order_id) DO UPDATE SET
            paid_at = excluded.paid_at, status = 'paid', total_amount = excluded.total_amount,
            currency = excluded.currency, channel = COALESCE(excluded.channel, o.channel),
            items = CASE WHEN excluded.items = '[]' THEN o.items ELSE excluded.items END
        WHERE o.paid_at IS NULL AND o.status = 'placed'
        RETURNING customer_id, currency, total_amount, paid_at, items
    ), spend AS (
        INSERT INTO customer_spend AS s (customer_id, currency, amount, order_count)
        SELECT customer_id, currency, sum(total_amount), count(*) FROM newly_paid GROUP BY customer_id, currency
        ON CONFLICT (customer_id, currency) DO UPDATE SET
            amount = s.amount + excluded.amount, order_count = s.order_count + excluded.order_count
    ), categories AS (
        INSERT INTO customer_categories AS cc (customer_id, category, quantity, first_bought_at, last_bought_at)
        SELECT n.customer_id, i.category, sum(i.quantity), min(n.paid_at), max(n.paid_at)
        FROM newly_paid n CROSS JOIN LATERAL jsonb_to_recordset(n.items) AS i(category text, quantity integer)
        WHERE i.category IS NOT NULL
        GROUP BY n.customer_id, i.category
        ON CONFLICT (customer_id, category) DO UPDATE SET
            quantity = cc.quantity + excluded.quantity,
            first_bought_at = LEAST(cc.first_bought_at, excluded.first_bought_at),
            last_bought_at = GREATEST(cc.last_bought_at, excluded.last_bought_at)
    )
    INSERT INTO customers AS c (customer_id, order_count, first_order_at, last_order_at)
    SELECT customer_id, count(*), min(paid_at), max(paid_at) FROM newly_paid GROUP BY customer_id
    ON CONFLICT (customer_id) DO UPDATE SET
        order_count    = c.order_count + excluded.order_count,
        first_order_at = LEAST(c.first_order_at, excluded.first_order_at),
        last_order_at  = GREATEST(c.last_order_at, excluded.last_order_at),
        updated_at     = now()
    RETURNING customer_id, order_count, first_order_at, last_order_at
""")

_RECORD_PLACED = text("""
    INSERT INTO orders AS o (order_id, customer_id, currency, total_amount, status, placed_at, channel, items)
    SELECT order_id, customer_id, currency, total_amount, 'placed', placed_at, channel, CAST(items AS jsonb)
    FROM unnest(CAST(:order_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:currencies AS text[]),
                CAST(:amounts AS numeric[]), CAST(:placed_ats AS timestamptz[]), CAST(:channels AS text[]),
                CAST(:items AS text[]))
         AS t(order_id, customer_id, currency, total_amount, placed_at, channel, items)
    ON CONFLICT (order_id) DO UPDATE SET placed_at = COALESCE(o.placed_at, excluded.placed_at)
""")

_RECORD_COMPLETED = text("""
    UPDATE orders o SET completed_at = t.completed_at,
                        status = CASE WHEN o.status = 'paid' THEN 'completed' ELSE o.status END
    FROM unnest(CAST(:order_ids AS text[]), CAST(:completed_ats AS timestamptz[])) AS t(order_id, completed_at)
    WHERE o.order_id = t.order_id
""")

# Refunds and cancellations: what is given back is capped at what is left of the order, so the
# net spend never goes below zero, whatever the shop sends. A cancelled paid order is refunded
# in full. The customer's refunded-order count grows the first time an order is refunded.
_APPLY_REFUNDS = text("""
    WITH req AS (
        SELECT * FROM unnest(CAST(:order_ids AS text[]), CAST(:amounts AS numeric[]),
                             CAST(:ats AS timestamptz[]), CAST(:cancels AS boolean[]))
               AS t(order_id, amount, at, cancelled)
    ), cur AS (
        SELECT o.order_id, o.customer_id, o.currency, o.total_amount, o.refunded_amount, o.paid_at
        FROM orders o JOIN req USING (order_id) FOR UPDATE OF o
    ), delta AS (
        SELECT c.*, r.cancelled, r.at,
               CASE WHEN c.paid_at IS NULL THEN 0 ELSE LEAST(r.amount, c.total_amount - c.refunded_amount) END
                   AS refund
        FROM cur c JOIN req r USING (order_id)
    ), updated AS (
        UPDATE orders o SET
            refunded_amount = o.refunded_amount + d.refund,
            status = CASE WHEN d.cancelled THEN 'cancelled'
                          WHEN d.paid_at IS NULL THEN o.status
                          WHEN o.refunded_amount + d.refund >= o.total_amount THEN 'refunded'
                          WHEN d.refund > 0 THEN 'partially_refunded'
                          ELSE o.status END,
            cancelled_at = CASE WHEN d.cancelled THEN d.at ELSE o.cancelled_at END
        FROM delta d WHERE o.order_id = d.order_id
        RETURNING o.order_id
    ), spend AS (
        UPDATE customer_spend s SET refunded = s.refunded + x.refund
        FROM (SELECT customer_id, currency, sum(refund) AS refund FROM delta WHERE refund > 0
              GROUP BY customer_id, currency) x
        WHERE s.customer_id = x.customer_id AND s.currency = x.currency
    )
    UPDATE customers c SET refunded_order_count = c.refunded_order_count + x.first_refunds, updated_at = now()
    FROM (SELECT customer_id, count(*) FILTER (WHERE refunded_amount = 0) AS first_refunds FROM delta
          WHERE refund > 0 GROUP BY customer_id) x
    WHERE c.customer_id = x.customer_id
    RETURNING c.customer_id, c.order_count, c.first_order_at, c.last_order_at
""")

_ADD_TO_TIMELINE = text("""
    INSERT INTO timeline (customer_id, occurred_at, kind, channel, details, event_id)
    SELECT customer_id, occurred_at, kind, channel, CAST(details AS jsonb), event_id
    FROM unnest(CAST(:customer_ids AS text[]), CAST(:occurred_ats AS timestamptz[]), CAST(:kinds AS text[]),
                CAST(:channels AS text[]), CAST(:details AS text[]), CAST(:event_ids AS text[]))
         AS t(customer_id, occurred_at, kind, channel, details, event_id)
""")


_COUNT_VIEWS = text("""
    INSERT INTO customer_categories AS cc (customer_id, category, views, last_viewed_at)
    SELECT customer_id, category, count(*), max(viewed_at)
    FROM unnest(CAST(:customer_ids AS text[]), CAST(:categories AS text[]), CAST(:viewed_ats AS timestamptz[]))
         AS t(customer_id, category, viewed_at)
    GROUP BY customer_id, category
    ON CONFLICT (customer_id, category) DO UPDATE SET
        views = cc.views + excluded.views,
        last_viewed_at = GREATEST(cc.last_viewed_at, excluded.last_viewed_at)
""")


# Tier and churn level are owned by the loyalty and churn services; the profile shows a copy.
_COPY_LEVEL = {
    column: text(f"""
        INSERT INTO customers AS c (customer_id, {column})
        SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:values AS text[]))
        ON CONFLICT (customer_id) DO UPDATE SET {column} = excluded.{column}, updated_at = now()
    """) for column in ("tier", "churn_level")
}


def _items_json(items: list) -> str:
    return orjson.dumps(items).decode()


def _stats(rows) -> list[CustomerStats]:
    return [CustomerStats(r.customer_id, r.order_count, r.first_order_at, r.last_order_at) for r in rows]


class ActivityQueries(Queries):
    async def record_placed_orders(self, orders: list[OrderFact]) -> None:
        await self.connection.execute(_RECORD_PLACED, {
            "order_ids": [o.order_id for o in orders], "customer_ids": [o.customer_id for o in orders],
            "currencies": [o.currency for o in orders], "amounts": [o.total_amount for o in orders],
            "placed_ats": [o.at for o in orders], "channels": [o.channel for o in orders],
            "items": [_items_json(o.items) for o in orders]})

    async def apply_paid_orders(self, orders: list[OrderFact]) -> list[CustomerStats]:
        """Each order counts once whatever the event; returns the statistics of the customers that grew."""
        result = await self.connection.execute(_APPLY_PAID_ORDERS, {
            "order_ids": [o.order_id for o in orders], "customer_ids": [o.customer_id for o in orders],
            "currencies": [o.currency for o in orders], "amounts": [o.total_amount for o in orders],
            "paid_ats": [o.at for o in orders], "channels": [o.channel for o in orders],
            "items": [_items_json(o.items) for o in orders]})
        return _stats(result.all())

    async def record_completed_orders(self, orders: list[OrderFact]) -> None:
        await self.connection.execute(_RECORD_COMPLETED, {"order_ids": [o.order_id for o in orders],
                                                          "completed_ats": [o.at for o in orders]})

    async def apply_refunds(self, requests: list[RefundRequest]) -> list[CustomerStats]:
        result = await self.connection.execute(_APPLY_REFUNDS, {
            "order_ids": [r.order_id for r in requests], "amounts": [r.amount for r in requests],
            "ats": [r.at for r in requests], "cancels": [r.cancelled for r in requests]})
        return _stats(result.all())

    async def add_to_timeline(self, entries: list[TimelineEntry]) -> None:
        if entries:
            columns = list(zip(*entries, strict=True))
            await self.connection.execute(_ADD_TO_TIMELINE, {
                "customer_ids": list(columns[0]), "occurred_ats": list(columns[1]), "kinds": list(columns[2]),
                "channels": list(columns[3]), "details": [orjson.dumps(d).decode() for d in columns[4]],
                "event_ids": list(columns[5])})

    async def count_category_views(self, views: list[CategoryView]) -> None:
        if views:
            await self.connection.execute(_COUNT_VIEWS, {
                "customer_ids": [v.customer_id for v in views], "categories": [v.category for v in views],
                "viewed_ats": [v.viewed_at for v in views]})

    async def copy_levels(self, column: str, latest: dict[str, str]) -> None:
        """The tier or churn level the loyalty or churn service announced (``column``: tier, churn_level)."""
        await self.connection.execute(_COPY_LEVEL[column], {"customer_ids": list(latest),
                                                            "values": list(latest.values())})
