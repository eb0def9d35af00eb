"""The loyalty service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from crm_shared.metrics import ExporterElection
from crm_shared.service import ServiceRuntime, ServiceSpec, build_app
from crm_shared.uow import UnitOfWork, unit_of_work
from fastapi import FastAPI

from crm_loyalty import api
from crm_loyalty.domain.programme import DEFAULT_PROGRAMME
from crm_loyalty.handlers import HANDLERS
from crm_loyalty.jobs import periodic_jobs
from crm_loyalty.metrics import LoyaltyMetrics
from crm_loyalty.repository import LoyaltyRepository
from crm_loyalty.settings import LoyaltySettings
from crm_loyalty.usecases.common import ProgrammeStore

SERVICE = ServiceSpec(
    name="loyalty", title="CRM loyalty service", default_port=8002, settings_class=LoyaltySettings,
    app_factory="crm_loyalty.app:create_app", migrations="crm_loyalty:migrations", handlers=HANDLERS,
    repository=LoyaltyRepository, jobs=periodic_jobs)


@dataclass(frozen=True)
class LoyaltyResources:
    settings: LoyaltySettings
    store: ProgrammeStore
    metrics: LoyaltyMetrics
    open_uow: Callable[[], AbstractAsyncContextManager[UnitOfWork[LoyaltyRepository]]]  # for the ledger jobs


def create_app(settings: LoyaltySettings | None = None) -> FastAPI:
    settings = settings or LoyaltySettings()
    store = ProgrammeStore()

    @asynccontextmanager
    async def resources(runtime: ServiceRuntime) -> AsyncIterator[LoyaltyResources]:
        async with unit_of_work(runtime.engine, LoyaltyRepository) as uow:  # the default programme is version 1
            await store.seed(uow, DEFAULT_PROGRAMME)
            await uow.commit()
        async with ExporterElection(settings.session_dsn, lease_s=settings.metrics_lease_s) as election:
            yield LoyaltyResources(settings=settings, store=store,
                                   metrics=LoyaltyMetrics(runtime.metrics.registry, election, store),
                                   open_uow=lambda: unit_of_work(runtime.engine, LoyaltyRepository))

    return build_app(SERVICE, settings, routers=api.routers, resources=resources,
                     description="Membership tiers and the points ledger.")
