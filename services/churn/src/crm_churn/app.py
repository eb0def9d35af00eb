"""The churn service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from crm_shared.background import background, run_periodically
from crm_shared.metrics import ExporterElection
from crm_shared.service import ServiceRuntime, ServiceSpec, build_app
from fastapi import FastAPI

from crm_churn import api
from crm_churn.handlers import TOPICS, build_handlers
from crm_churn.metrics import ChurnMetrics
from crm_churn.refit import Refitter
from crm_churn.repository import ModelStore
from crm_churn.scoring import Scorer
from crm_churn.settings import ChurnSettings

SERVICE = ServiceSpec(
    name="churn", title="CRM churn service", default_port=8004, settings_class=ChurnSettings,
    app_factory="crm_churn.app:create_app", migrations="crm_churn:migrations", subscribes=TOPICS)


@dataclass(frozen=True)
class ChurnResources:
    settings: ChurnSettings
    scorer: Scorer
    refitter: Refitter
    metrics: ChurnMetrics


def create_app(settings: ChurnSettings | None = None) -> FastAPI:
    settings = settings or ChurnSettings()
    scorer = Scorer(ModelStore(settings.churn_horizon_days), settings)

    @asynccontextmanager
    async def resources(runtime: ServiceRuntime) -> AsyncIterator[ChurnResources]:
        async with ExporterElection(settings.session_dsn, lease_s=settings.metrics_lease_s) as election:
            metrics = ChurnMetrics(runtime.metrics.registry, election, scorer)
            refitter = Refitter(runtime.engine, scorer, settings, metrics.refit_duration)
            async with background(
                    run_periodically(refitter.scheduled, interval_s=settings.refit_interval_s,
                                     first_delay_s=settings.refit_first_delay_s, what="churn refit"),
                    run_periodically(lambda: metrics.refresh(runtime.engine), interval_s=settings.metrics_refresh_s,
                                     what="churn metrics")):
                yield ChurnResources(settings=settings, scorer=scorer, refitter=refitter, metrics=metrics)

    return build_app(SERVICE, settings, routers=[api.router], handlers=build_handlers(scorer), resources=resources,
                     description="Calibrated churn early warning with reasons, and win-back triggers.")
