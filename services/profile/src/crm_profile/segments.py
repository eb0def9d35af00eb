"""Keeping segments current: RFM scores across the base, and custom segments' members.

RFM is relative to the whole customer base, so it is recomputed for everybody by a scheduled job
(``SEGMENT_REFRESH_INTERVAL_S``, and ``POST /v1/segments/refresh``). Custom segments are
re-evaluated for the customers an event batch touched, in that batch's transaction, and for
everybody by the same job (rules such as "no order in 30 days" change with time alone). Every
change of membership emits ``crm.profile.segment.entered`` / ``exited`` through the outbox.

The job runs beside the event consumer, which locks its batch's customers in whatever order its
statements take them. It once scored and wrote the whole base in one transaction, so the two
could wait on each other's rows and PostgreSQL aborted one of them as a deadlock. Now PostgreSQL
ranks the base once, and the job applies scores and custom segments in short transactions of a
chunk of customers each, taking only the rows nobody holds and coming back for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import stamina
from crm_shared.bus import add_to_outbox
from crm_shared.db import is_transient
from crm_shared.logging import get_logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm_profile.domain.events import segment_changed
from crm_profile.domain.segments import CompiledRule, Rule, facts_sql, rfm_segment_sql

if TYPE_CHECKING:
    from crm_profile.metrics import ProfileMetrics

log = get_logger(__name__)

JOB_LOCK = 0x5E6_3E47  # pg advisory lock: one replica refreshes at a time
CHUNK_SIZE = 1000  # customers per transaction of the scheduled refresh

# Quintiles of the percent rank: ties share the lower score, so the many one-time buyers of a
# shop all get F=1 rather than being spread over several scores by chance. PostgreSQL ranks the
# whole base and names the segments in one statement, into a table of this session that the
# chunks below read: the service never holds the base.
_RFM_SNAPSHOT = text(f"""
    CREATE TEMPORARY TABLE rfm_run AS
    SELECT customer_id, r, f, m, {rfm_segment_sql("r", "f", "m")} AS segment FROM (
        SELECT c.customer_id,
               LEAST(5, 1 + floor(percent_rank() OVER (ORDER BY c.last_order_at) * 5))::int AS r,
               LEAST(5, 1 + floor(percent_rank() OVER (ORDER BY c.order_count) * 5))::int AS f,
               LEAST(5, 1 + floor(percent_rank() OVER (ORDER BY COALESCE(s.amount - s.refunded, 0)) * 5))::int AS m
        FROM customers c
        LEFT JOIN customer_spend s ON s.customer_id = c.customer_id AND s.currency = :currency
        WHERE c.order_count > 0 AND c.erased_at IS NULL
    ) scores
""")
_DROP_SNAPSHOT = text("DROP TABLE IF EXISTS pg_temp.rfm_run")
_NEXT_CHUNK = text("SELECT customer_id FROM customers WHERE customer_id > :after ORDER BY customer_id LIMIT :n")
# A chunk never waits for a row an event batch holds (a batch may lock its customers in any
# order, so waiting could close a cycle: PostgreSQL then aborts one side as a deadlock). The
# rows it cannot lock now are deferred to a later pass.
_LOCK_CHUNK = text("""
    SELECT customer_id FROM customers WHERE customer_id = ANY(CAST(:ids AS text[]))
    ORDER BY customer_id FOR NO KEY UPDATE SKIP LOCKED
""")
# Only the scores that changed are written (no table-wide rewrite every run); the rows whose
# name changed come back for their segment events.
_WRITE_RFM = text("""
    WITH changed AS (
        SELECT c.customer_id, c.rfm_segment AS old_segment, s.r, s.f, s.m, s.segment
        FROM customers c JOIN rfm_run s ON s.customer_id = c.customer_id
        WHERE c.customer_id = ANY(CAST(:ids AS text[]))
          AND (c.rfm_r, c.rfm_f, c.rfm_m, c.rfm_segment) IS DISTINCT FROM (s.r, s.f, s.m, s.segment)
    ), written AS (
        UPDATE customers c SET rfm_r = ch.r, rfm_f = ch.f, rfm_m = ch.m, rfm_segment = ch.segment,
                               rfm_scored_at = :at
        FROM changed ch WHERE c.customer_id = ch.customer_id
    )
    SELECT customer_id, old_segment, segment FROM changed WHERE old_segment IS DISTINCT FROM segment
""")
# Membership rows of a customer are written only by a transaction that holds the customer's row
# (here, in id order), so a refresh chunk that locked the row never waits for a batch's insert.
_LOCK_CUSTOMERS = text("""
    SELECT customer_id FROM customers WHERE customer_id = ANY(CAST(:ids AS text[]))
    ORDER BY customer_id FOR NO KEY UPDATE
""")
_SEGMENTS = text("SELECT segment_id, rule FROM segments ORDER BY segment_id")


class RefreshResult(NamedTuple):
    scored: int  # customers given RFM scores
    membership_changes: int  # custom segments entered or left
    deferred: int  # customers an event batch held through every pass: scored by the next run


def _rfm_events(rows, at: datetime) -> list:
    events = []
    for row in rows:
        if row.old_segment is not None:
            events.append(segment_changed(customer_id=row.customer_id, segment_id=f"rfm:{row.old_segment}",
                                          entered=False, at=at))
        events.append(segment_changed(customer_id=row.customer_id, segment_id=f"rfm:{row.segment}", entered=True,
                                      at=at))
    return events


async def _refresh_chunk(db: AsyncConnection, currency: str, at: datetime, ids: list[str]) -> tuple[list[str], int]:
    """One transaction: RFM scores from the snapshot and every custom segment for the customers
    of ``ids`` whose rows are free; returns the ids it left (held by a batch) and the changes."""
    locked = list((await db.execute(_LOCK_CHUNK, {"ids": ids})).scalars())
    changes = 0
    if locked:
        renamed = (await db.execute(_WRITE_RFM, {"ids": locked, "at": at})).all()
        await add_to_outbox(db, _rfm_events(renamed, at))
        changes = await refresh_segments(db, currency, locked, holds_rows=True)
    await db.commit()
    free = set(locked)
    return [customer for customer in ids if customer not in free], changes


async def _chunk_with_retry(db: AsyncConnection, currency: str, at: datetime, *, ids: list[str] | None = None,
                            after: str | None = None, size: int) -> tuple[list[str], list[str], int]:
    """A chunk (``ids``, or the next ``size`` customers after ``after``), retried on its own when
    the database answers with a transient failure; returns (its ids, those left, changes)."""
    async for attempt in stamina.retry_context(on=is_transient, attempts=5, wait_initial=0.05, wait_max=1.0):
        with attempt:
            try:
                chunk = ids if ids is not None else list(
                    (await db.execute(_NEXT_CHUNK, {"after": after, "n": size})).scalars())
                left, changes = await _refresh_chunk(db, currency, at, chunk) if chunk else ([], 0)
            except BaseException:
                await db.rollback()
                raise
    return chunk, left, changes


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
                           segment_id: str | None = None, *, holds_rows: bool = False) -> int:
    """Re-evaluate custom segments (all, or one) for some customers (or all); returns the changes.
    ``holds_rows``: the transaction has already locked these customers' rows."""
    if customer_ids is not None and not customer_ids:
        return 0
    at = datetime.now(UTC)
    events = []
    defined = [row for row in (await tx.execute(_SEGMENTS)).all() if segment_id in (None, row.segment_id)]
    if defined and customer_ids is not None and not holds_rows:
        await tx.execute(_LOCK_CUSTOMERS, {"ids": customer_ids})
    for row in defined:
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


async def refresh_all(engine: AsyncEngine, currency: str, *, chunk_size: int = CHUNK_SIZE, passes: int = 3,
                      pause_s: float = 1.0) -> RefreshResult | None:
    """The scheduled job: RFM and every custom segment for everybody. Returns the figures, or None
    when another replica holds the job.

    The base is walked in chunks of ``chunk_size`` customers, each its own short transaction, so
    that event batches wait at most one chunk for a customer's row, never the whole refresh. The
    customers a batch holds are tried again after ``pause_s``, up to ``passes`` passes in all.
    """
    # The lock is held by a transaction of its own connection: whatever ends this job (an error,
    # a cancellation), returning that connection to the pool rolls back and releases it.
    async with engine.connect() as guard:
        if not (await guard.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": JOB_LOCK})).scalar():
            return None
        async with engine.connect() as db:
            try:
                await db.execute(_DROP_SNAPSHOT)  # a run that died on this connection may have left one
                await db.execute(_RFM_SNAPSHOT, {"currency": currency})
                await db.execute(text("CREATE UNIQUE INDEX ON rfm_run (customer_id)"))
                await db.execute(text("ANALYZE rfm_run"))
                scored = (await db.execute(text("SELECT count(*) FROM rfm_run"))).scalar_one()
                await db.commit()
                at = datetime.now(UTC)
                changes, left, after = 0, [], ""
                while True:
                    chunk, held, changed = await _chunk_with_retry(db, currency, at, after=after, size=chunk_size)
                    if not chunk:
                        break
                    after, changes = chunk[-1], changes + changed
                    left.extend(held)
                for _ in range(passes - 1):
                    if not left:
                        break
                    await asyncio.sleep(pause_s)
                    still = []
                    for start in range(0, len(left), chunk_size):
                        _, held, changed = await _chunk_with_retry(db, currency, at, ids=left[start:start + chunk_size],
                                                                   size=chunk_size)
                        still.extend(held)
                        changes += changed
                    left = still
            finally:
                with contextlib.suppress(Exception):
                    await db.rollback()
                    await db.execute(_DROP_SNAPSHOT)
                    await db.commit()
    return RefreshResult(scored, changes, len(left))


_SIZES = text("""
    SELECT 'rfm:' || rfm_segment AS segment_id, count(*) AS members FROM customers
    WHERE rfm_segment IS NOT NULL AND erased_at IS NULL GROUP BY rfm_segment
    UNION ALL
    SELECT s.segment_id, count(m.customer_id) FROM segments s
    LEFT JOIN segment_members m ON m.segment_id = s.segment_id GROUP BY s.segment_id
""")


async def segment_sizes(db: AsyncConnection) -> dict[str, int]:
    return {row.segment_id: row.members for row in await db.execute(_SIZES)}


async def run_refresh(engine: AsyncEngine, currency: str, metrics: ProfileMetrics) -> RefreshResult | None:
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
    await asyncio.sleep(first_delay_s)
    while True:
        try:
            result = await run_refresh(engine, currency, metrics)
            if result is not None:
                log.info("segments refreshed", scored=result.scored, membership_changes=result.membership_changes,
                         deferred=result.deferred)
        except Exception:  # a database outage must not end the job; the next run retries
            log.exception("segment refresh failed")
        await asyncio.sleep(interval_s)
