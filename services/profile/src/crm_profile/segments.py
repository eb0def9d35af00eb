"""Keeping segments current: RFM scores across the base, and custom segments' members.

RFM is relative to the whole customer base, so it is recomputed for everybody by a scheduled job
(``SEGMENT_REFRESH_INTERVAL_S``, and ``POST /v1/segments/refresh``). Custom segments are
re-evaluated for the customers an event batch touched, in that batch's transaction, and for
everybody by the same job (rules such as "no order in 30 days" change with time alone). Every
change of membership emits ``crm.profile.segment.entered`` / ``exited`` through the outbox.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from crm_shared.bus import add_to_outbox
from crm_shared.logging import get_logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm_profile.domain.events import segment_changed
from crm_profile.domain.segments import CompiledRule, Rule, facts_sql, rfm_segment

if TYPE_CHECKING:
    from crm_profile.metrics import ProfileMetrics

log = get_logger(__name__)

# Quintiles of the percent rank: ties share the lower score, so the many one-time buyers of a
# shop all get F=1 rather than being spread over several scores by chance.
_RFM_SCORES = text("""
    SELECT c.customer_id, c.rfm_r AS old_r, c.rfm_f AS old_f, c.rfm_m AS old_m, c.rfm_segment,
           LEAST(5, 1 + floor(percent_rank() OVER (ORDER BY c.last_order_at) * 5))::int AS r,
           LEAST(5, 1 + floor(percent_rank() OVER (ORDER BY c.order_count) * 5))::int AS f,
           LEAST(5, 1 + floor(percent_rank() OVER (ORDER BY COALESCE(s.amount - s.refunded, 0)) * 5))::int AS m
    FROM customers c
    LEFT JOIN customer_spend s ON s.customer_id = c.customer_id AND s.currency = :currency
    WHERE c.order_count > 0 AND c.erased_at IS NULL
""")
_RFM_WRITE = text("""
    UPDATE customers c SET rfm_r = t.r, rfm_f = t.f, rfm_m = t.m, rfm_segment = t.segment, rfm_scored_at = :at
    FROM unnest(CAST(:ids AS text[]), CAST(:rs AS int[]), CAST(:fs AS int[]), CAST(:ms AS int[]),
                CAST(:segments AS text[])) AS t(customer_id, r, f, m, segment)
    WHERE c.customer_id = t.customer_id
""")
_SEGMENTS = text("SELECT segment_id, rule FROM segments ORDER BY segment_id")
JOB_LOCK = 0x5E6_3E47  # pg advisory lock: one replica refreshes at a time


async def recompute_rfm(tx: AsyncConnection, currency: str) -> int:
    """Score every customer with an order; write only the scores that changed (no table-wide
    rewrite every run) and emit segment events for those whose RFM name changed."""
    at = datetime.now(UTC)
    scored = (await tx.execute(_RFM_SCORES, {"currency": currency})).all()
    rows, names = [], []
    for row in scored:
        name = rfm_segment(row.r, row.f, row.m)
        if (row.old_r, row.old_f, row.old_m, row.rfm_segment) != (row.r, row.f, row.m, name):
            rows.append(row)
            names.append(name)
    if rows:
        await tx.execute(_RFM_WRITE, {"ids": [r.customer_id for r in rows], "rs": [r.r for r in rows],
                                      "fs": [r.f for r in rows], "ms": [r.m for r in rows], "segments": names,
                                      "at": at})
    events = []
    for row, name in zip(rows, names, strict=True):
        if row.rfm_segment != name:
            if row.rfm_segment is not None:
                events.append(segment_changed(customer_id=row.customer_id, segment_id=f"rfm:{row.rfm_segment}",
                                              entered=False, at=at))
            events.append(segment_changed(customer_id=row.customer_id, segment_id=f"rfm:{name}", entered=True, at=at))
    await add_to_outbox(tx, events)
    return len(scored)


def _membership_sql(compiled: CompiledRule, restricted: bool) -> str:
    only = "AND f.customer_id = ANY(CAST(:ids AS text[]))" if restricted else ""
    only_members = "AND m.customer_id = ANY(CAST(:ids AS text[]))" if restricted else ""
    return f"""
        WITH f AS ({facts_sql(with_activity=compiled.uses_activity)}),
        matched AS (SELECT f.customer_id FROM f WHERE COALESCE({compiled.sql}, false) {only}),
        entered AS (
            INSERT INTO segment_members (segment_id, customer_id)
            SELECT :segment_id, customer_id FROM matched
            ON CONFLICT DO NOTHING RETURNING customer_id
        ), exited AS (
            DELETE FROM segment_members m
            WHERE m.segment_id = :segment_id {only_members}
              AND NOT EXISTS (SELECT 1 FROM matched WHERE matched.customer_id = m.customer_id)
            RETURNING customer_id
        )
        SELECT customer_id, true AS entered FROM entered
        UNION ALL SELECT customer_id, false FROM exited"""


async def refresh_segments(tx: AsyncConnection, currency: str, customer_ids: list[str] | None = None,
                           segment_id: str | None = None) -> int:
    """Re-evaluate custom segments (all, or one) for some customers (or all); returns the changes."""
    if customer_ids is not None and not customer_ids:
        return 0
    at = datetime.now(UTC)
    events = []
    for row in (await tx.execute(_SEGMENTS)).all():
        if segment_id is not None and row.segment_id != segment_id:
            continue
        compiled = CompiledRule(parse_rule(row.rule))
        params: dict[str, Any] = {**compiled.params, "segment_id": row.segment_id, "currency": currency}
        if customer_ids is not None:
            params["ids"] = customer_ids
        changes = await tx.execute(text(_membership_sql(compiled, customer_ids is not None)), params)
        events.extend(segment_changed(customer_id=c.customer_id, segment_id=row.segment_id, entered=c.entered, at=at)
                      for c in changes)
    await add_to_outbox(tx, events)
    return len(events)


def parse_rule(stored: Any) -> Rule:
    from pydantic import TypeAdapter

    value = orjson.loads(stored) if isinstance(stored, str | bytes) else stored
    return TypeAdapter(Rule).validate_python(value)


async def refresh_all(engine: AsyncEngine, currency: str) -> tuple[int, int] | None:
    """The scheduled job: RFM for everybody, then every custom segment for everybody. Returns
    (customers scored, membership changes), or None when another replica holds the job."""
    async with engine.connect() as tx:
        if not (await tx.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": JOB_LOCK})).scalar():
            return None
        scored = await recompute_rfm(tx, currency)
        changes = await refresh_segments(tx, currency)
        await tx.commit()
    return scored, changes


_SIZES = text("""
    SELECT 'rfm:' || rfm_segment AS segment_id, count(*) AS members FROM customers
    WHERE rfm_segment IS NOT NULL AND erased_at IS NULL GROUP BY rfm_segment
    UNION ALL
    SELECT s.segment_id, count(m.customer_id) FROM segments s
    LEFT JOIN segment_members m ON m.segment_id = s.segment_id GROUP BY s.segment_id
""")


async def segment_sizes(db: AsyncConnection) -> dict[str, int]:
    return {row.segment_id: row.members for row in await db.execute(_SIZES)}


async def run_refresh(engine: AsyncEngine, currency: str, metrics: ProfileMetrics) -> tuple[int, int] | None:
    import time

    started = time.perf_counter()
    result = await refresh_all(engine, currency)
    if result is not None:
        metrics.refresh_duration.observe(time.perf_counter() - started)
        await metrics.refresh(engine)  # the new sizes at once (if this replica exports them)
    return result


async def refresh_forever(engine: AsyncEngine, currency: str, interval_s: float, first_delay_s: float,
                          metrics: ProfileMetrics) -> None:
    """The scheduled job: first run ``first_delay_s`` after start, then every ``interval_s``."""
    import asyncio

    await asyncio.sleep(first_delay_s)
    while True:
        try:
            result = await run_refresh(engine, currency, metrics)
            if result is not None:
                log.info("segments refreshed", scored=result[0], membership_changes=result[1])
        except Exception:  # a database outage must not end the job; the next run retries
            log.exception("segment refresh failed")
        await asyncio.sleep(interval_s)
