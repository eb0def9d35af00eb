"""The tickets service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from crm_shared.background import background, run_periodically
from crm_shared.metrics import ExporterElection
from crm_shared.service import ServiceRuntime, ServiceSpec, build_app
from fastapi import FastAPI

from crm_tickets import api
from crm_tickets.handlers import TOPICS, build_handlers
from crm_tickets.metrics import TicketsMetrics
from crm_tickets.repository import PolicyStore
from crm_tickets.scheduler import SlaScheduler
from crm_tickets.settings import TicketsSettings

SERVICE = ServiceSpec(
    name="tickets", title="CRM tickets service", default_port=8003, settings_class=TicketsSettings,
    app_factory="crm_tickets.app:create_app", migrations="crm_tickets:migrations", subscribes=TOPICS)


@dataclass(frozen=True)
class TicketsResources:
    settings: TicketsSettings
    policy: PolicyStore
    scheduler: SlaScheduler
    metrics: TicketsMetrics


def create_app(settings: TicketsSettings | None = None) -> FastAPI:
    settings = settings or TicketsSettings()
    policy = PolicyStore()

    @asynccontextmanager
    async def resources(runtime: ServiceRuntime) -> AsyncIterator[TicketsResources]:
        async with runtime.engine.connect() as tx:  # the default policy is version 1
            await policy.seed(tx)
            await tx.commit()
        scheduler = SlaScheduler(runtime.engine, settings.sla_scan_batch)
        async with ExporterElection(settings.session_dsn, lease_s=settings.metrics_lease_s) as election:
            metrics = TicketsMetrics(runtime.metrics.registry, election)
            async with background(
                    run_periodically(scheduler.scan, interval_s=settings.sla_scan_interval_s,
                                     first_delay_s=settings.sla_scan_first_delay_s, what="sla scan"),
                    run_periodically(lambda: metrics.refresh(runtime.engine), interval_s=settings.metrics_refresh_s,
                                     what="tickets metrics")):
                yield TicketsResources(settings=settings, policy=policy, scheduler=scheduler, metrics=metrics)

    return build_app(SERVICE, settings, routers=[api.router, api.admin_router, api.kb_router],
                     handlers=build_handlers(policy), resources=resources,
                     description="Complaints and after-sales tickets with SLAs, assignment and satisfaction.")
