"""The profile service's periodic work (started by ``build_app`` from ``SERVICE.jobs``):

- the segment refresh: RFM scores and every custom segment for the whole base
  (``usecases.segments.refresh_all``), first ``SEGMENT_REFRESH_FIRST_DELAY_S`` after start, then
  every ``SEGMENT_REFRESH_INTERVAL_S``; one replica at a time (an advisory lock);
- the metrics snapshot (customers, members per segment) every ``METRICS_REFRESH_S``, read by the
  replica elected to export them.

A failing round is logged and tried again at the next interval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm_shared.background import PeriodicJob
from crm_shared.logging import get_logger
from crm_shared.uow import unit_of_work

from crm_profile.repository.segments import SegmentRepository
from crm_profile.usecases.segments import RefreshResult, run_refresh

if TYPE_CHECKING:
    from crm_shared.service import ServiceRuntime

    from crm_profile.app import ProfileResources

log = get_logger(__name__)


async def refresh_segments_now(runtime: ServiceRuntime, resources: ProfileResources) -> RefreshResult | None:
    """One segment refresh (the job's round, and ``POST /v1/segments/refresh``): None when another
    replica is refreshing; the duration and the new sizes go to the metrics."""
    metrics = resources.metrics
    return await run_refresh(lambda: unit_of_work(runtime.engine, SegmentRepository),
                             resources.settings.rfm_currency, took=metrics.refresh_duration.observe,
                             then=lambda: metrics.refresh(runtime.engine))


def periodic_jobs(runtime: ServiceRuntime, resources: ProfileResources) -> list[PeriodicJob]:
    settings = resources.settings

    async def refresh_segments() -> None:
        result = await refresh_segments_now(runtime, resources)
        if result is not None:
            log.info("segments refreshed", scored=result.scored, membership_changes=result.membership_changes,
                     deferred=result.deferred)

    return [
        PeriodicJob("segment refresh", refresh_segments, interval_s=settings.segment_refresh_interval_s,
                    first_delay_s=settings.segment_refresh_first_delay_s),
        PeriodicJob("profile metrics", lambda: resources.metrics.refresh(runtime.engine),
                    interval_s=settings.metrics_refresh_s),
    ]
