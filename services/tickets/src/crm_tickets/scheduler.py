"""The SLA scheduler: marks and announces warnings and breaches, each exactly once.

Any number of replicas may run it at the same moment: each event is tied to a conditional UPDATE
of its ticket (``repository.scan_sla``), so two schedulers never announce the same warning twice,
and a large backlog is worked through in chunks, one transaction each.
"""

from __future__ import annotations

from datetime import UTC, datetime

from crm_shared.logging import get_logger
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_tickets.repository import scan_sla

log = get_logger(__name__)


class SlaScheduler:
    def __init__(self, engine: AsyncEngine, batch: int) -> None:
        self._engine = engine
        self._batch = batch

    async def scan(self, as_of: datetime | None = None) -> int:
        """One pass: every warning and breach due by ``as_of`` (default now). Returns events queued."""
        as_of = as_of or datetime.now(UTC)
        total = 0
        while True:
            async with self._engine.connect() as tx:
                queued, more = await scan_sla(tx, as_of, self._batch)
                await tx.commit()
            total += queued
            if not more:
                break
        if total:
            log.info("sla scan", events=total, as_of=as_of.isoformat())
        return total
