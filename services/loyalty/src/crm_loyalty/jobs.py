"""The loyalty service's periodic work, declared for the runtime: the ledger jobs
(``usecases/ledger_jobs.py``: release, expiry, expiry notices, tiers, birthdays, discount holds)
every ``JOBS_INTERVAL_S``, and the database-wide metrics every ``METRICS_REFRESH_S``."""

from __future__ import annotations

from typing import Any

from crm_shared.background import PeriodicJob
from crm_shared.service import ServiceRuntime

from crm_loyalty.usecases import ledger_jobs


def periodic_jobs(runtime: ServiceRuntime, resources: Any) -> list[PeriodicJob]:
    settings = resources.settings
    return [
        PeriodicJob("loyalty jobs", lambda: ledger_jobs.run_all(resources.open_uow, resources.store),
                    interval_s=settings.jobs_interval_s, first_delay_s=settings.jobs_first_delay_s),
        PeriodicJob("loyalty metrics", lambda: resources.metrics.refresh(runtime.engine),
                    interval_s=settings.metrics_refresh_s),
    ]
