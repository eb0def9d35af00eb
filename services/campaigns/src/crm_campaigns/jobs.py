"""The campaigns service's periodic work: the planner, the delivery worker, the metrics snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm_shared.background import PeriodicJob
from crm_shared.service import ServiceRuntime

if TYPE_CHECKING:
    from crm_campaigns.app import CampaignsResources


def periodic_jobs(runtime: ServiceRuntime, resources: CampaignsResources) -> list[PeriodicJob]:
    settings = resources.settings

    async def metrics() -> None:
        await resources.metrics.refresh(runtime.engine)

    return [PeriodicJob("campaigns metrics", metrics, interval_s=settings.metrics_refresh_s)]
