"""The loyalty service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from crm_shared.background import background, run_periodically
from crm_shared.metrics import ExporterElection
from crm_shared.service import ServiceRuntime, ServiceSpec, build_app
from fastapi import FastAPI

from crm_loyalty import api
from crm_loyalty.domain.programme import DEFAULT_PROGRAMME
from crm_loyalty.handlers import TOPICS, build_handlers
from crm_loyalty.jobs import Jobs
from crm_loyalty.metrics import LoyaltyMetrics
from crm_loyalty.repository import ProgrammeStore
from crm_loyalty.settings import LoyaltySettings

SERVICE = ServiceSpec(
    name="loyalty", title="CRM loyalty service", default_port=8002, settings_class=LoyaltySettings,
    app_factory="crm_loyalty.app:create_app", migrations="crm_loyalty:migrations", subscribes=TOPICS)


@dataclass(frozen=True)
class LoyaltyResources:
    settings: LoyaltySettings
    store: ProgrammeStore
    jobs: Jobs
    metrics: LoyaltyMetrics


def create_app(settings: LoyaltySettings | None = None) -> FastAPI:
    settings = settings or LoyaltySettings()
    store = ProgrammeStore()

    @asynccontextmanager
    async def resources(runtime: ServiceRuntime) -> AsyncIterator[LoyaltyResources]:
        async with runtime.engine.connect() as tx:  # the default programme is version 1
            await store.seed(tx, DEFAULT_PROGRAMME)
            await tx.commit()
        jobs = Jobs(runtime.engine, store)
        async with ExporterElection(settings.session_dsn, lease_s=settings.metrics_lease_s) as election:
            metrics = LoyaltyMetrics(runtime.metrics.registry, election, store)
            async with background(
                    run_periodically(jobs.run_all, interval_s=settings.jobs_interval_s,
                                     first_delay_s=settings.jobs_first_delay_s, what="loyalty jobs"),
                    run_periodically(lambda: metrics.refresh(runtime.engine), interval_s=settings.metrics_refresh_s,
                                     what="loyalty metrics")):
                yield LoyaltyResources(settings=settings, store=store, jobs=jobs, metrics=metrics)

    return build_app(SERVICE, settings, routers=[api.router], handlers=build_handlers(store), resources=resources,
                     description="Membership tiers and the points ledger.")
