"""The churn service's periodic work: the scheduled refit and the database-wide metrics snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm_shared.background import PeriodicJob
from crm_shared.service import ServiceRuntime

from crm_churn.usecases.refit import scheduled_refit

if TYPE_CHECKING:
    from crm_churn.app import ChurnResources


def periodic_jobs(runtime: ServiceRuntime, resources: ChurnResources) -> list[PeriodicJob]:
    settings = resources.settings

    async def refit() -> None:
        await scheduled_refit(resources.units, resources.scorer, horizon_days=settings.churn_horizon_days,
                              min_customers=settings.refit_min_customers,
                              observe=resources.metrics.refit_duration.observe)

    async def metrics() -> None:
        await resources.metrics.refresh(runtime.engine)

    return [PeriodicJob("churn refit", refit, interval_s=settings.refit_interval_s,
                        first_delay_s=settings.refit_first_delay_s),
            PeriodicJob("churn metrics", metrics, interval_s=settings.metrics_refresh_s)]
