"""The tickets service's periodic work: the SLA sweep and the refresh of its database-wide metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crm_shared.background import PeriodicJob
from crm_shared.service import ServiceRuntime
from crm_shared.uow import unit_of_work

from crm_tickets.repository import TicketsRepository
from crm_tickets.usecases import sla


def periodic_jobs(runtime: ServiceRuntime, resources: Any) -> list[PeriodicJob]:
    settings = resources.settings

    async def sla_sweep() -> int:
        return await sla.sweep(lambda: unit_of_work(runtime.engine, TicketsRepository), as_of=datetime.now(UTC),
                               batch=settings.sla_scan_batch)

    return [
        PeriodicJob("sla scan", sla_sweep, interval_s=settings.sla_scan_interval_s,
                    first_delay_s=settings.sla_scan_first_delay_s),
        PeriodicJob("tickets metrics", lambda: resources.metrics.refresh(runtime.engine),
                    interval_s=settings.metrics_refresh_s),
    ]
