"""The churn database: history as of any moment, the current model, and writing scores.

Features are always computed from the history tables *as of* a moment, in one set-based
statement, so the same query serves live scoring (as of now), the training cutoff and the
backtest cutoff. Repositories never commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from crm_shared.bus import add_to_outbox
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_churn.domain.events import risk_changed
from crm_churn.domain.model import ChurnModel, History, levels, prior_model

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

# Above this many customers, turning rows into arrays and scoring them runs in a worker thread.
_OFF_LOOP_ROWS = 2000

_BUMP_HISTORY = text("""
    INSERT INTO churn_customers AS c (customer_id, history_version)
    SELECT unnest(CAST(:ids AS text[])), 1
    ON CONFLICT (customer_id) DO UPDATE SET history_version = c.history_version + 1
""")

_PURCHASERS = text("""SELECT DISTINCT customer_id FROM churn_orders
                      WHERE paid_at >= :start AND paid_at < :end""")

_UPSERT_SCORES = text("""
    INSERT INTO churn_scores AS s (customer_id, score, level, previous_level, level_changed_at, p_alive,
                                   expected_orders_90d, one_time_buyer, value_12m, value_at_risk, currency,
                                   reasons, indicators, model_version, history_version, scored_at)
    SELECT u.customer_id, u.score, u.level, NULL, :at, u.p_alive, u.expected, u.one_time,
           round(CAST(u.value_12m AS numeric), 4), round(CAST(u.value_at_risk AS numeric), 4), u.currency,
           CAST(u.reasons AS jsonb), CAST(u.indicators AS jsonb), :version, u.history_version, :at
    FROM unnest(CAST(:ids AS text[]), CAST(:scores AS float8[]), CAST(:levels AS text[]),
                CAST(:p_alive AS float8[]), CAST(:expected AS float8[]), CAST(:one_time AS boolean[]),
                CAST(:value AS float8[]), CAST(:at_risk AS float8[]), CAST(:currency AS text[]),
                CAST(:reasons AS text[]), CAST(:indicators AS text[]), CAST(:history_versions AS bigint[]))
         AS u(customer_id, score, level, p_alive, expected, one_time, value_12m, value_at_risk, currency, reasons,
              indicators, history_version)
    ON CONFLICT (customer_id) DO UPDATE SET
        score = excluded.score, level = excluded.level, previous_level = s.level,
        level_changed_at = CASE WHEN s.level IS DISTINCT FROM excluded.level THEN excluded.scored_at
                                ELSE s.level_changed_at END,
        p_alive = excluded.p_alive, expected_orders_90d = excluded.expected_orders_90d,
        one_time_buyer = excluded.one_time_buyer, value_12m = excluded.value_12m,
        value_at_risk = excluded.value_at_risk, currency = excluded.currency, reasons = excluded.reasons,
        indicators = excluded.indicators,
        model_version = excluded.model_version, history_version = excluded.history_version,
        scored_at = excluded.scored_at
    -- A score computed from an older history never replaces one computed from a newer history (a
    -- refit's rescoring chunk that read just before a consumer transaction committed). The row
    -- lock of ON CONFLICT makes this check see the committed version.
    WHERE s.history_version <= excluded.history_version
    RETURNING s.customer_id, s.level, s.previous_level
""")


def _timestamps(as_of: datetime) -> dict[str, datetime]:
    naive = as_of.astimezone(UTC).replace(tzinfo=None)  # activity days are UTC dates
    return {"as_of": as_of, "d90": as_of - timedelta(days=90), "d365": as_of - timedelta(days=365),
            "t": naive, "t7": naive - timedelta(days=7), "t30": naive - timedelta(days=30),
            "t90": naive - timedelta(days=90)}


async def load_history(db: AsyncConnection, as_of: datetime, ids: Sequence[str] | None = None) -> History:
    """Every customer with a paid order before ``as_of`` (or those of ``ids``), as they were then."""
    params: dict[str, Any] = _timestamps(as_of)
    if ids is not None:
        params["ids"] = list(ids)
    rows = (await db.execute(_HISTORY_ALL if ids is None else _HISTORY_OF, params)).all()
    if len(rows) > _OFF_LOOP_ROWS:  # a refit's load: keep the event loop (consumer, HTTP) free meanwhile
        return await asyncio.to_thread(_history_from_rows, as_of, rows)
    return _history_from_rows(as_of, rows)


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


async def history_changed(tx: AsyncConnection, customer_ids: Sequence[str]) -> None:
    """Record, in the transaction that changed it, that these customers' history moved on."""
    await tx.execute(_BUMP_HISTORY, {"ids": sorted(set(customer_ids))})


async def purchasers(db: AsyncConnection, start: datetime, end: datetime) -> set[str]:
    """Customers with a paid order in [start, end): the ones who did *not* churn in that window."""
    return {row[0] for row in await db.execute(_PURCHASERS, {"start": start, "end": end})}


async def customers_with_orders(db: AsyncConnection) -> list[str]:
    return [row[0] for row in await db.execute(text("SELECT DISTINCT customer_id FROM churn_orders ORDER BY 1"))]


async def write_scores(tx: AsyncConnection, model: ChurnModel, history: History, *, at: datetime,
                       medium_at: float, high_at: float, traceparent: str | None = None) -> tuple[int, int]:
    """Score ``history`` with ``model``, store the scores and queue ``crm.churn.risk.changed`` for
    each customer whose level changed. Returns (scored, level changes)."""
    if len(history) == 0:
        return 0, 0
    scores = await asyncio.to_thread(model.score, history) if len(history) > _OFF_LOOP_ROWS else model.score(history)
    level = levels(scores.score, medium_at, high_at)
    at_risk = scores.score * history.value_12m
    reasons_json = [orjson.dumps(r).decode() for r in scores.reasons]
    written = (await tx.execute(_UPSERT_SCORES, {
        "ids": history.customer_ids, "scores": scores.score.tolist(), "levels": level,
        "p_alive": scores.p_alive.tolist(), "expected": scores.expected_orders_90d.tolist(),
        "one_time": scores.one_time_buyer.tolist(), "value": history.value_12m.tolist(),
        "at_risk": at_risk.tolist(), "currency": history.currency, "reasons": reasons_json,
        "indicators": [orjson.dumps(i).decode() for i in history.indicators_of()],
        "history_versions": history.history_version,
        "version": model.version, "at": at})).all()
    index = {customer_id: i for i, customer_id in enumerate(history.customer_ids)}
    events = []
    for row in written:
        if row.previous_level == row.level:
            continue
        i = index[row.customer_id]
        events.append(risk_changed(row.customer_id, row.previous_level, row.level, float(scores.score[i]),
                                   scores.reasons[i], model.version, at, traceparent))
    await add_to_outbox(tx, events)
    return len(written), len(events)


class ModelStore:
    """The current model, read from ``churn_models`` at most once a second per process: a refit on
    one replica reaches the others within a second; before the first refit it is the prior."""

    MAX_AGE_S = 1.0

    def __init__(self, horizon_days: float) -> None:
        self._model = prior_model(horizon_days)
        self._checked_at = 0.0

    def put(self, model: ChurnModel) -> None:
        self._model = model
        self._checked_at = time.monotonic()

    async def current(self, db: AsyncConnection) -> ChurnModel:
        if time.monotonic() - self._checked_at < self.MAX_AGE_S:
            return self._model
        latest = (await db.execute(text("SELECT version FROM churn_models ORDER BY trained_at DESC LIMIT 1"))).first()
        if latest is not None and latest.version != self._model.version:
            row = (await db.execute(text("SELECT version, kind, params FROM churn_models WHERE version = :v"),
                                    {"v": latest.version})).one()
            params = row.params if isinstance(row.params, dict) else orjson.loads(row.params)
            self._model = ChurnModel.from_params(row.version, row.kind, params)
        self._checked_at = time.monotonic()
        return self._model
