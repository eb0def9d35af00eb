"""Keeping segments current: RFM scores across the base, and custom segments' members.

RFM is relative to the whole customer base, so it is recomputed for everybody by a scheduled job
(``SEGMENT_REFRESH_INTERVAL_S``, declared in ``jobs.py``, and ``POST /v1/segments/refresh``).
Custom segments are re-evaluated for the customers an event batch touched, in that batch's
transaction (:func:`refresh_segments`), and for everybody by the same job (rules such as "no
order in 30 days" change with time alone). Every change of membership emits
``crm.profile.segment.entered`` / ``exited`` through the outbox.

The job runs beside the event consumer, which locks its batch's customers in whatever order its
statements take them. It once scored and wrote the whole base in one transaction, so the two
could wait on each other's rows and PostgreSQL aborted one of them as a deadlock. Now PostgreSQL
ranks the base once, and the job applies scores and custom segments in short transactions of a
chunk of customers each, taking only the rows nobody holds and coming back for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import stamina
from crm_shared.db import is_transient

from crm_profile.domain.events import segment_changed
from crm_profile.domain.segments import CompiledRule, parse_rule

if TYPE_CHECKING:
    from crm_shared.events.envelope import CloudEvent
    from crm_shared.uow import UnitOfWork

    from crm_profile.repository.segments import RfmChange, SegmentRepository

    OpenUnit = Callable[[], AbstractAsyncContextManager[UnitOfWork[SegmentRepository]]]

CHUNK_SIZE = 1000  # customers per transaction of the scheduled refresh


class RefreshResult(NamedTuple):
    scored: int  # customers given RFM scores
    membership_changes: int  # custom segments entered or left
    deferred: int  # customers an event batch held through every pass: scored by the next run


async def refresh_segments(uow: UnitOfWork[SegmentRepository], currency: str, customer_ids: list[str] | None = None,
                           segment_id: str | None = None, *, holds_rows: bool = False) -> int:
    """Re-evaluate custom segments (all, or one) for some customers (or all); returns the changes.
    ``holds_rows``: the transaction has already locked these customers' rows.

    Membership rows of a customer are written only by a transaction that holds the customer's row
    (taken here in id order), so a refresh chunk that locked the row never waits for a batch."""
    if customer_ids is not None and not customer_ids:
        return 0
    at = datetime.now(UTC)
    events: list[CloudEvent] = []
    defined = await uow.repo.segment_rules(segment_id)
    if defined and customer_ids is not None and not holds_rows:
        await uow.repo.lock_customers(customer_ids)
    for defined_id, rule in defined:
        changes = await uow.repo.apply_rule(defined_id, CompiledRule(parse_rule(rule)), currency, customer_ids)
        events.extend(segment_changed(customer_id=c.customer_id, segment_id=defined_id, entered=c.entered, at=at)
                      for c in changes)
    await uow.publish(events)
    return len(events)


def _rfm_events(changes: Iterable[RfmChange], at: datetime) -> list[CloudEvent]:
    events = []
    for change in changes:
        if change.old_segment is not None:
            events.append(segment_changed(customer_id=change.customer_id, segment_id=f"rfm:{change.old_segment}",
                                          entered=False, at=at))
        events.append(segment_changed(customer_id=change.customer_id, segment_id=f"rfm:{change.segment}",
                                      entered=True, at=at))
    return events


async def _refresh_chunk(uow: UnitOfWork[SegmentRepository], currency: str, at: datetime,
                         ids: list[str]) -> tuple[list[str], int]:
    """One transaction: RFM scores from the snapshot and every custom segment for the customers
    of ``ids`` whose rows are free; returns the ids it left (held by a batch) and the changes.

    A chunk never waits for a row an event batch holds (a batch may lock its customers in any
    order, so waiting could close a cycle: PostgreSQL then aborts one side as a deadlock). The
    rows it cannot lock now are deferred to a later pass."""
    locked = await uow.repo.lock_free(ids)
    changes = 0
    if locked:
        await uow.publish(_rfm_events(await uow.repo.write_rfm(locked, at), at))
        changes = await refresh_segments(uow, currency, locked, holds_rows=True)
    await uow.commit()
    free = set(locked)
    return [customer for customer in ids if customer not in free], changes


async def _chunk_with_retry(uow: UnitOfWork[SegmentRepository], currency: str, at: datetime, *,
                            ids: list[str] | None = None, after: str | None = None,
                            size: int) -> tuple[list[str], list[str], int]:
    """A chunk (``ids``, or the next ``size`` customers after ``after``), retried on its own when
    the database answers with a transient failure; returns (its ids, those left, changes)."""
    async for attempt in stamina.retry_context(on=is_transient, attempts=5, wait_initial=0.05, wait_max=1.0):
        with attempt:
            try:
                chunk = ids if ids is not None else await uow.repo.next_chunk(after or "", size)
                left, changes = await _refresh_chunk(uow, currency, at, chunk) if chunk else ([], 0)
            except BaseException:
                await uow.rollback()
                raise
    return chunk, left, changes


async def refresh_all(open_uow: OpenUnit, currency: str, *, chunk_size: int = CHUNK_SIZE, passes: int = 3,
                      pause_s: float = 1.0) -> RefreshResult | None:
    """The scheduled job: RFM and every custom segment for everybody. Returns the figures, or None
    when another replica holds the job.

    The base is walked in chunks of ``chunk_size`` customers, each its own short transaction (the
    work unit commits after each), so that event batches wait at most one chunk for a customer's
    row, never the whole refresh. The customers a batch holds are tried again after ``pause_s``,
    up to ``passes`` passes in all.
    """
    # The lock is held by the transaction of a unit of its own: whatever ends this job (an error,
    # a cancellation), leaving that unit rolls back and releases it. The work unit keeps one
    # connection throughout, so the snapshot (a temporary table of its session) lasts the run.
    async with open_uow() as guard:
        if not await guard.repo.try_lock_refresh():
            return None
        async with open_uow() as work:
            try:
                scored = await work.repo.snapshot_rfm(currency)
                await work.commit()
                at = datetime.now(UTC)
                changes, left, after = 0, [], ""
                while True:
                    chunk, held, changed = await _chunk_with_retry(work, currency, at, after=after, size=chunk_size)
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
                        _, held, changed = await _chunk_with_retry(work, currency, at,
                                                                   ids=left[start:start + chunk_size], size=chunk_size)
                        still.extend(held)
                        changes += changed
                    left = still
            finally:
                with contextlib.suppress(Exception):
                    await work.rollback()
                    await work.repo.drop_rfm_snapshot()
                    await work.commit()
    return RefreshResult(scored, changes, len(left))


async def run_refresh(open_uow: OpenUnit, currency: str, *, took: Callable[[float], Any] | None = None,
                      then: Callable[[], Awaitable[Any]] | None = None) -> RefreshResult | None:
    """:func:`refresh_all`, then, when this replica ran it, ``took(seconds)`` (the duration
    histogram) and ``then()`` (the metrics: the new sizes at once, if this replica exports them)."""
    started = time.perf_counter()
    result = await refresh_all(open_uow, currency)
    if result is not None:
        if took is not None:
            took(time.perf_counter() - started)
        if then is not None:
            await then()
    return result
