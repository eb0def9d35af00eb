"""The churn history as of any moment: features in one set-based statement.

Features are always computed from the history tables *as of* a moment, so the same query serves
live scoring (as of now), the training cutoff and the backtest cutoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_churn.domain.model import History

_HISTORY = """
    WITH o AS (
        SELECT customer_id, paid_at, currency, total_amount - refunded_amount AS net,
               row_number() OVER (PARTITION BY customer_id ORDER BY paid_at DESC, order_id DESC) AS rn
        FROM churn_orders
        WHERE paid_at < :as_of AND (cancelled_at IS NULL OR cancelled_at >= :as_of) {only}
    ), latest AS (
        SELECT customer_id, currency FROM o WHERE rn = 1
    ), orders AS (
        SELECT o.customer_id, count(*) AS n, min(o.paid_at) AS first_at, max(o.paid_at) AS last_at,
               max(o.paid_at) FILTER (WHERE o.rn = 2) AS prev_at, min(latest.currency) AS currency,
               -- value in the currency of the latest order (a shop rarely sells one customer in two)
               COALESCE(sum(o.net) FILTER (WHERE o.paid_at >= :d365 AND o.currency = latest.currency), 0) AS value_12m
        FROM o JOIN latest USING (customer_id) GROUP BY o.customer_id
    ), activity AS (
        SELECT customer_id,
               sum(events) FILTER (WHERE day >= CAST(:t7 AS timestamp)) AS a7,
               sum(events) FILTER (WHERE day >= CAST(:t30 AS timestamp)) AS a30,
               sum(events) AS a90,
               sum(events) FILTER (WHERE day < CAST(:t30 AS timestamp)) AS a_prev60
        FROM churn_activity WHERE day < CAST(:t AS timestamp) AND day >= CAST(:t90 AS timestamp) {only}
        GROUP BY customer_id
    ), tickets AS (
        SELECT customer_id,
               count(*) FILTER (WHERE kind = 'complaint' AND opened_at >= :d90) AS complaints,
               count(*) FILTER (WHERE resolved_at IS NULL OR resolved_at >= :as_of) AS open_tickets,
               count(*) FILTER (WHERE breached_at < :as_of AND breached_at >= :d90) AS breaches
        FROM churn_tickets WHERE opened_at < :as_of {only}
        GROUP BY customer_id
    ), csat AS (
        SELECT DISTINCT ON (customer_id) customer_id, score FROM churn_csat
        WHERE submitted_at < :as_of {only}
        ORDER BY customer_id, submitted_at DESC
    )
    SELECT orders.customer_id, COALESCE(churn_customers.history_version, 0) AS history_version, orders.n,
           extract(epoch FROM orders.first_at) AS first_at,
           extract(epoch FROM orders.last_at) AS last_at, extract(epoch FROM orders.prev_at) AS prev_at,
           orders.currency, orders.value_12m,
           COALESCE(a7, 0) AS a7, COALESCE(a30, 0) AS a30, COALESCE(a90, 0) AS a90,
           COALESCE(a_prev60, 0) AS a_prev60, COALESCE(complaints, 0) AS complaints,
           COALESCE(open_tickets, 0) AS open_tickets, COALESCE(breaches, 0) AS breaches, csat.score AS csat
    FROM orders LEFT JOIN activity USING (customer_id) LEFT JOIN tickets USING (customer_id)
         LEFT JOIN csat USING (customer_id) LEFT JOIN churn_customers USING (customer_id)
    ORDER BY orders.customer_id
"""
_HISTORY_ALL = text(_HISTORY.format(only=""))
_HISTORY_OF = text(_HISTORY.format(only="AND customer_id = ANY(CAST(:ids AS text[]))"))
# Above this many customers, turning rows into arrays (and scoring them) runs in a worker thread.
OFF_LOOP_ROWS = 2000

_BUMP_HISTORY = text("""
    INSERT INTO churn_customers AS c (customer_id, history_version)
    SELECT unnest(CAST(:ids AS text[])), 1
    ON CONFLICT (customer_id) DO UPDATE SET history_version = c.history_version + 1
""")
_PURCHASERS = text("""SELECT DISTINCT customer_id FROM churn_orders
                      WHERE paid_at >= :start AND paid_at < :end""")
_WITH_ORDERS = text("SELECT DISTINCT customer_id FROM churn_orders ORDER BY 1")
_FORGET = text("DELETE FROM churn_scores WHERE customer_id = ANY(CAST(:ids AS text[]))")


def _timestamps(as_of: datetime) -> dict[str, datetime]:
    naive = as_of.astimezone(UTC).replace(tzinfo=None)  # activity days are UTC dates
    return {"as_of": as_of, "d90": as_of - timedelta(days=90), "d365": as_of - timedelta(days=365),
            "t": naive, "t7": naive - timedelta(days=7), "t30": naive - timedelta(days=30),
            "t90": naive - timedelta(days=90)}


def _history_from_rows(as_of: datetime, rows: Sequence[Any]) -> History:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in range(16)]

    def floats(k: int) -> np.ndarray:
        return np.array([np.nan if v is None else float(v) for v in columns[k]], dtype=float)

    return History(
        as_of=as_of.timestamp(), customer_ids=list(columns[0]), history_version=list(columns[1]), orders=floats(2),
        first_order=floats(3), last_order=floats(4), previous_order=floats(5), currency=list(columns[6]),
        value_12m=floats(7), activity_7d=floats(8), activity_30d=floats(9), activity_90d=floats(10),
        activity_prev_60d=floats(11), complaints_90d=floats(12), open_tickets=floats(13),
        sla_breaches_90d=floats(14), last_csat=floats(15))



class HistoryQueries:
    _db: AsyncConnection

    async def load_history(self, as_of: datetime, ids: Sequence[str] | None = None) -> History:
        """Every customer with a paid order before ``as_of`` (or those of ``ids``), as they were then."""
        params: dict[str, Any] = _timestamps(as_of)
        if ids is not None:
            params["ids"] = list(ids)
        rows = (await self._db.execute(_HISTORY_ALL if ids is None else _HISTORY_OF, params)).all()
        if len(rows) > OFF_LOOP_ROWS:  # a refit's load: keep the event loop (consumer, HTTP) free meanwhile
            return await asyncio.to_thread(_history_from_rows, as_of, rows)
        return _history_from_rows(as_of, rows)

    async def history_changed(self, customer_ids: Sequence[str]) -> None:
        """Record, in the transaction that changed it, that these customers' history moved on."""
        await self._db.execute(_BUMP_HISTORY, {"ids": sorted(set(customer_ids))})

    async def purchasers(self, start: datetime, end: datetime) -> set[str]:
        """Customers with a paid order in [start, end): the ones who did *not* churn in that window."""
        return {row[0] for row in await self._db.execute(_PURCHASERS, {"start": start, "end": end})}

    async def customers_with_orders(self) -> list[str]:
        return [row[0] for row in await self._db.execute(_WITH_ORDERS)]

    async def forget_scores(self, customer_ids: Sequence[str]) -> None:
        await self._db.execute(_FORGET, {"ids": sorted(set(customer_ids))})

    async def repeatable_read(self) -> None:
        """One snapshot for every later statement of this transaction (call first)."""
        await self._db.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
