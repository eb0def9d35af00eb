"""The SQL of segments: the scheduled refresh's RFM snapshot and chunks, custom segments' membership,
and the sizes the metrics and the API report.

The rules themselves are pure (``domain/segments.py`` compiles a custom rule into one condition
over the customer facts, every value a bound parameter); the use cases (``usecases/segments.py``)
decide what to refresh, in which transactions, and which events follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.domain.segments import CompiledRule, facts_sql, rfm_segment_sql

JOB_LOCK = 0x5E6_3E47  # pg advisory lock: one replica refreshes at a time

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


_TRY_JOB_LOCK = text("SELECT pg_try_advisory_xact_lock(:k)")
_INDEX_SNAPSHOT = text("CREATE UNIQUE INDEX ON rfm_run (customer_id)")
_ANALYZE_SNAPSHOT = text("ANALYZE rfm_run")
_COUNT_SNAPSHOT = text("SELECT count(*) FROM rfm_run")
_SIZES = text("""
    SELECT 'rfm:' || rfm_segment AS segment_id, count(*) AS members FROM customers
    WHERE rfm_segment IS NOT NULL AND erased_at IS NULL GROUP BY rfm_segment
    UNION ALL
    SELECT s.segment_id, count(m.customer_id) FROM segments s
    LEFT JOIN segment_members m ON m.segment_id = s.segment_id GROUP BY s.segment_id
""")


_CUSTOMERS = text("SELECT count(*) FROM customers")
# The marketer's R×F grid: customers and their net spend (in the RFM currency, as M counts it) per
# pair of scores; erased customers are left out, as from the segment sizes. Only the cells that
# have customers come back (the use case fills in the rest).
_RFM_GRID = text("""
    SELECT c.rfm_r AS r, c.rfm_f AS f, count(*) AS customers,
           COALESCE(sum(s.amount - s.refunded), 0) AS value, max(c.rfm_scored_at) AS scored_at
    FROM customers c
    LEFT JOIN customer_spend s ON s.customer_id = c.customer_id AND s.currency = :currency
    WHERE c.rfm_r IS NOT NULL AND c.rfm_f IS NOT NULL AND c.erased_at IS NULL
    GROUP BY c.rfm_r, c.rfm_f
""")


@dataclass(frozen=True, slots=True)
class RfmChange:
    """A customer whose RFM segment name changed (``old_segment`` None: first scored)."""

    customer_id: str
    old_segment: str | None
    segment: str


@dataclass(frozen=True, slots=True)
class RfmCell:
    """Customers with recency score ``r`` and frequency score ``f``, their net spend, when last scored."""

    r: int
    f: int
    customers: int
    value: Decimal
    scored_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MembershipChange:
    customer_id: str
    entered: bool


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


class SegmentRepository:
    """Segments' SQL on one connection (the refresh job's, or a route's or a batch's transaction)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    # ---- custom segments

    async def segment_rules(self, segment_id: str | None = None) -> list[tuple[str, Any]]:
        """(segment_id, stored rule) of every custom segment, or of the one named, by id."""
        return [(row.segment_id, row.rule) for row in (await self.connection.execute(_SEGMENTS)).all()
                if segment_id in (None, row.segment_id)]

    async def lock_customers(self, customer_ids: list[str]) -> None:
        """Hold these customers' rows (in id order) before writing their membership rows."""
        await self.connection.execute(_LOCK_CUSTOMERS, {"ids": customer_ids})

    async def apply_rule(self, segment_id: str, compiled: CompiledRule, currency: str,
                         customer_ids: list[str] | None = None) -> list[MembershipChange]:
        """Make the segment's members those of its rule (among ``customer_ids``, or everybody);
        returns who entered and who left."""
        params: dict[str, Any] = {**compiled.params, "segment_id": segment_id, "currency": currency}
        if customer_ids is not None:
            params["ids"] = customer_ids
        changes = await self.connection.execute(text(_membership_sql(compiled, customer_ids is not None)), params)
        return [MembershipChange(row.customer_id, row.entered) for row in changes]

    async def segment_sizes(self) -> dict[str, int]:
        """Members per segment: ``rfm:<name>`` (erased customers not counted) and every custom one."""
        return {row.segment_id: row.members for row in await self.connection.execute(_SIZES)}

    async def rfm_grid(self, currency: str) -> list[RfmCell]:
        """The R×F cells that have customers (not erased), with their net spend in ``currency``."""
        rows = await self.connection.execute(_RFM_GRID, {"currency": currency})
        return [RfmCell(row.r, row.f, row.customers, row.value, row.scored_at) for row in rows]

    async def customer_count(self) -> int:
        """Customers in the archive (erased ones too)."""
        return (await self.connection.execute(_CUSTOMERS)).scalar_one()

    # ---- the scheduled refresh

    async def try_lock_refresh(self) -> bool:
        """One replica refreshes at a time: a lock held by this transaction (released when it ends)."""
        return bool((await self.connection.execute(_TRY_JOB_LOCK, {"k": JOB_LOCK})).scalar())

    async def snapshot_rfm(self, currency: str) -> int:
        """Rank the whole base into this session's ``rfm_run`` (a run that died on this connection
        may have left one: it is replaced); returns the customers scored."""
        await self.connection.execute(_DROP_SNAPSHOT)
        await self.connection.execute(_RFM_SNAPSHOT, {"currency": currency})
        await self.connection.execute(_INDEX_SNAPSHOT)
        await self.connection.execute(_ANALYZE_SNAPSHOT)
        return (await self.connection.execute(_COUNT_SNAPSHOT)).scalar_one()

    async def drop_rfm_snapshot(self) -> None:
        await self.connection.execute(_DROP_SNAPSHOT)

    async def next_chunk(self, after: str, size: int) -> list[str]:
        """The ids of the next ``size`` customers after ``after``."""
        return list((await self.connection.execute(_NEXT_CHUNK, {"after": after, "n": size})).scalars())

    async def lock_free(self, customer_ids: list[str]) -> list[str]:
        """Lock those of these customers' rows nobody holds (in id order); returns their ids."""
        return list((await self.connection.execute(_LOCK_CHUNK, {"ids": customer_ids})).scalars())

    async def write_rfm(self, customer_ids: list[str], at: datetime) -> list[RfmChange]:
        """Write the snapshot's scores that changed; returns the customers whose segment name changed."""
        rows = (await self.connection.execute(_WRITE_RFM, {"ids": customer_ids, "at": at})).all()
        return [RfmChange(row.customer_id, row.old_segment, row.segment) for row in rows]
