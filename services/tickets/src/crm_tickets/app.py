"""The tickets service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from crm_shared.metrics import ExporterElection
from crm_shared.service import ServiceRuntime, ServiceSpec, build_app
from crm_shared.uow import unit_of_work
from fastapi import FastAPI

from crm_tickets import api
from crm_tickets.handlers import HANDLERS
from crm_tickets.jobs import periodic_jobs
from crm_tickets.metrics import TicketsMetrics
from crm_tickets.repository import TicketsRepository
from crm_tickets.settings import TicketsSettings
from crm_tickets.usecases.policy import PolicyStore

SERVICE = ServiceSpec(
    name="tickets", title="CRM tickets service", default_port=8003, settings_class=TicketsSettings,
    app_factory="crm_tickets.app:create_app", migrations="crm_tickets:migrations", handlers=HANDLERS,
    repository=TicketsRepository, jobs=periodic_jobs)


@dataclass(frozen=True)
class TicketsResources:
    settings: TicketsSettings
    policy: PolicyStore
    metrics: TicketsMetrics


def create_app(settings: TicketsSettings | None = None) -> FastAPI:
    settings = settings or TicketsSettings()

    @asynccontextmanager
    async def resources(runtime: ServiceRuntime) -> AsyncIterator[TicketsResources]:
        policy = PolicyStore()
        async with unit_of_work(runtime.engine, TicketsRepository) as uow:  # the default policy is version 1
            await policy.seed(uow)
            await uow.commit()
        async with ExporterElection(settings.session_dsn, lease_s=settings.metrics_lease_s) as election:
            metrics = TicketsMetrics(runtime.metrics.registry, election)
            yield TicketsResources(settings=settings, policy=policy, metrics=metrics)

    return build_app(SERVICE, settings, routers=[api.router, api.admin_router, api.kb_router], resources=resources,
                     description="Complaints and after-sales tickets with SLAs, assignment and satisfaction.")
