"""The campaigns service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from crm_shared.metrics import ExporterElection
from crm_shared.service import ServiceRuntime, ServiceSpec, build_app
from crm_shared.uow import UnitOfWork, unit_of_work
from fastapi import FastAPI

from crm_campaigns import api
from crm_campaigns.delivery.channels import Channels, open_channels
from crm_campaigns.handlers import HANDLERS
from crm_campaigns.jobs import periodic_jobs
from crm_campaigns.metrics import CampaignsMetrics
from crm_campaigns.repository import CampaignsRepository
from crm_campaigns.settings import CampaignsSettings

SERVICE = ServiceSpec(
    name="campaigns", title="CRM campaigns service", default_port=8005, settings_class=CampaignsSettings,
    app_factory="crm_campaigns.app:create_app", migrations="crm_campaigns:migrations", handlers=HANDLERS,
    repository=CampaignsRepository, jobs=periodic_jobs)


@dataclass(frozen=True)
class CampaignsResources:
    settings: CampaignsSettings
    channels: Channels
    metrics: CampaignsMetrics
    # Units of work outside a request or a batch (the planner's, the worker's).
    units: Callable[..., AbstractAsyncContextManager[UnitOfWork[CampaignsRepository]]]


def create_app(settings: CampaignsSettings | None = None) -> FastAPI:
    settings = settings or CampaignsSettings()

    @asynccontextmanager
    async def resources(runtime: ServiceRuntime) -> AsyncIterator[CampaignsResources]:
        async with AsyncExitStack() as stack:
            election = await stack.enter_async_context(
                ExporterElection(settings.session_dsn, lease_s=settings.metrics_lease_s))
            channels = await stack.enter_async_context(open_channels(settings))

            def units(*, read_only: bool = False) -> AbstractAsyncContextManager[UnitOfWork[CampaignsRepository]]:
                return unit_of_work(runtime.engine, CampaignsRepository, read_only=read_only)

            yield CampaignsResources(settings=settings, channels=channels, units=units,
                                     metrics=CampaignsMetrics(runtime.metrics.registry, election))

    return build_app(SERVICE, settings, routers=api.routers, resources=resources, open_prefixes=("/v1/public/",),
                     description="Audiences, the care calendar, triggered journeys, delivery and measured lift.")
