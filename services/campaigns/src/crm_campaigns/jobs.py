"""The campaigns service's periodic work: the planner (occurrences of one-shot and recurring
campaigns), the delivery worker (due contacts, until none is left), the metrics snapshot. Every
replica runs them; the contacts' keys and the workers' SKIP LOCKED leases keep them apart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crm_shared.background import PeriodicJob
from crm_shared.service import ServiceRuntime

from crm_campaigns.usecases.delivery import deliver_due
from crm_campaigns.usecases.planning import plan

if TYPE_CHECKING:
    from crm_campaigns.app import CampaignsResources


def periodic_jobs(runtime: ServiceRuntime, resources: CampaignsResources) -> list[PeriodicJob]:
    settings = resources.settings

    async def planner() -> None:
        await plan(resources.units, datetime.now(UTC), default_zone=settings.default_time_zone,
                   holdout_share=settings.global_holdout_share, chunk=settings.planner_chunk)

    async def worker() -> None:
        # Batch after batch while contacts are due; the interval only paces an idle worker.
        claimed = await deliver_due(resources)
        while claimed:
            claimed = await deliver_due(resources)

    async def metrics() -> None:
        await resources.metrics.refresh(runtime.engine)

    return [PeriodicJob("campaigns planner", planner, interval_s=settings.planner_interval_s, first_delay_s=1.0),
            PeriodicJob("campaigns delivery", worker, interval_s=settings.worker_interval_s, first_delay_s=1.0),
            PeriodicJob("campaigns metrics", metrics, interval_s=settings.metrics_refresh_s)]
