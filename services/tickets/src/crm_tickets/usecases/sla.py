"""The SLA sweep: marks and announces warnings and breaches, each exactly once.

Any number of replicas may run it at the same moment: each event is tied to a conditional UPDATE
of its ticket (``TicketsRepository.mark_sla``), so two sweeps never announce the same warning
twice, and a large backlog is worked through in chunks, one unit of work (and commit) each.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from crm_shared.events.envelope import CloudEvent
from crm_shared.logging import get_logger

from crm_tickets.domain.events import sla_event
from crm_tickets.domain.workflow import SLA_MARKS
from crm_tickets.usecases.workflow import Uow

log = get_logger(__name__)


async def mark_due(uow: Uow, now: datetime, limit: int) -> tuple[int, bool]:
    """Mark and announce every warning and breach due by ``now`` (at most ``limit`` per kind).
    Returns how many events were queued and whether more may be due. The breach counter of the
    metrics is kept in the same unit of work: it only goes up, also when a reopened ticket clears
    its breach."""
    events: list[CloudEvent] = []
    more = False
    for kind, target in SLA_MARKS:
        rows = await uow.repo.mark_sla(kind, target, now, limit)
        more = more or len(rows) == limit
        events += [sla_event(kind, target, row, row.due_at, now) for row in rows]
        if kind == "sla_breached" and rows:
            await uow.repo.count_breaches(target, len(rows))
    await uow.publish(events)
    return len(events), more


async def sweep(units: Callable[[], AbstractAsyncContextManager[Uow]], *, as_of: datetime, batch: int) -> int:
    """One pass: every warning and breach due by ``as_of``, in chunks of ``batch`` per kind, each
    chunk committed on its own. Returns the events queued."""
    total = 0
    while True:
        async with units() as uow:
            queued, more = await mark_due(uow, as_of, batch)
            await uow.commit()
        total += queued
        if not more:
            break
    if total:
        log.info("sla scan", events=total, as_of=as_of.isoformat())
    return total
