"""The profile service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from crm_shared.metrics import ExporterElection
from crm_shared.service import ServiceRuntime, ServiceSpec, build_app
from fastapi import FastAPI

from crm_profile import api
from crm_profile.domain.pii import PiiVault
from crm_profile.handlers import HANDLERS
from crm_profile.jobs import periodic_jobs
from crm_profile.metrics import ProfileMetrics
from crm_profile.pii_rotation import check_service_key
from crm_profile.repository import ProfileRepository
from crm_profile.settings import ProfileSettings

SERVICE = ServiceSpec(
    name="profile", title="CRM profile service", default_port=8001, settings_class=ProfileSettings,
    app_factory="crm_profile.app:create_app", migrations="crm_profile:migrations", handlers=HANDLERS,
    repository=ProfileRepository, jobs=periodic_jobs)


@dataclass(frozen=True)
class ProfileResources:
    vault: PiiVault
    settings: ProfileSettings
    metrics: ProfileMetrics

    # What the handlers and routes read of the settings.
    @property
    def phone_default_region(self) -> str:
        return self.settings.phone_default_region

    @property
    def rfm_currency(self) -> str:
        return self.settings.rfm_currency


def create_app(settings: ProfileSettings | None = None) -> FastAPI:
    settings = settings or ProfileSettings()
    vault = PiiVault(settings.master_pii_key())

    @asynccontextmanager
    async def resources(runtime: ServiceRuntime) -> AsyncIterator[ProfileResources]:
        async with ExporterElection(settings.session_dsn, lease_s=settings.metrics_lease_s) as election:
            metrics = ProfileMetrics(runtime.metrics.registry, election)
            # The segment refresh and the metrics snapshot: jobs.py (started by build_app).
            yield ProfileResources(vault=vault, settings=settings, metrics=metrics)

    async def check_key() -> None:
        # Before the consumer starts: a value sealed under a key the rest of the data is not
        # under (the old key after a rotation, either key during one) would be unreadable later.
        await check_service_key(settings.database_url, vault)

    return build_app(SERVICE, settings, routers=[api.router, api.audit_router, api.segments_router],
                     resources=resources, before_start=check_key,
                     description="The customer archive: identity, purchase statistics and the customer-360 source.")
