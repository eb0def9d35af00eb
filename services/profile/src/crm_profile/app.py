"""The profile service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from crm_shared.service import ServiceRuntime, ServiceSpec, build_app
from fastapi import FastAPI

from crm_profile import api
from crm_profile.domain.pii import PiiVault
from crm_profile.handlers import TOPICS, build_handlers
from crm_profile.settings import ProfileSettings

SERVICE = ServiceSpec(
    name="profile", title="CRM profile service", default_port=8001, settings_class=ProfileSettings,
    app_factory="crm_profile.app:create_app", migrations="crm_profile:migrations", subscribes=TOPICS)


@dataclass(frozen=True)
class ProfileResources:
    vault: PiiVault
    settings: ProfileSettings


def create_app(settings: ProfileSettings | None = None) -> FastAPI:
    settings = settings or ProfileSettings()
    vault = PiiVault(settings.master_pii_key())

    @asynccontextmanager
    async def resources(_runtime: ServiceRuntime) -> AsyncIterator[ProfileResources]:
        yield ProfileResources(vault=vault, settings=settings)

    return build_app(SERVICE, settings, routers=[api.router, api.audit_router],
                     handlers=build_handlers(vault, settings.phone_default_region), resources=resources,
                     description="The customer archive: identity, purchase statistics and the customer-360 source.")
