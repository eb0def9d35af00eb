"""The churn service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from crm_shared.metrics import ExporterElection
from crm_shared.service import ServiceRuntime, ServiceSpec, build_app
from crm_shared.uow import UnitOfWork, unit_of_work
from fastapi import FastAPI

from crm_churn import api
from crm_churn.handlers import HANDLERS
from crm_churn.jobs import periodic_jobs
from crm_churn.metrics import ChurnMetrics
from crm_churn.repository import ChurnRepository
from crm_churn.settings import ChurnSettings
from crm_churn.usecases.scoring import ModelStore, Scorer

SERVICE = ServiceSpec(
    name="churn", title="CRM churn service", default_port=8004, settings_class=ChurnSettings,
    app_factory="crm_churn.app:create_app", migrations="crm_churn:migrations", handlers=HANDLERS,
    repository=ChurnRepository, jobs=periodic_jobs)


@dataclass(frozen=True)
class ChurnResources:
    settings: ChurnSettings
    scorer: Scorer
    metrics: ChurnMetrics
    # Units of work outside a request or a batch (the refit's): units() or units(read_only=True).
    units: Callable[..., AbstractAsyncContextManager[UnitOfWork[ChurnRepository]]]


def create_app(settings: ChurnSettings | None = None) -> FastAPI:
    settings = settings or ChurnSettings()
    scorer = Scorer(ModelStore(settings.churn_horizon_days), medium_at=settings.churn_level_medium,
                    high_at=settings.churn_level_high, chunk=settings.rescore_chunk)

    @asynccontextmanager
    async def resources(runtime: ServiceRuntime) -> AsyncIterator[ChurnResources]:
        async with ExporterElection(settings.session_dsn, lease_s=settings.metrics_lease_s) as election:
            def units(*, read_only: bool = False) -> AbstractAsyncContextManager[UnitOfWork[ChurnRepository]]:
                return unit_of_work(runtime.engine, ChurnRepository, read_only=read_only)

            yield ChurnResources(settings=settings, scorer=scorer, units=units,
                                 metrics=ChurnMetrics(runtime.metrics.registry, election, scorer))

    return build_app(SERVICE, settings, routers=[api.router], resources=resources,
                     description="Calibrated churn early warning with reasons, and win-back triggers.")
