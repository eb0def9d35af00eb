"""The profile service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from crm_shared.service import ServiceSpec, build_app
from fastapi import FastAPI

from crm_profile import api
from crm_profile.handlers import HANDLERS, TOPICS
from crm_profile.settings import ProfileSettings

SERVICE = ServiceSpec(
    name="profile", title="CRM profile service", default_port=8001, settings_class=ProfileSettings,
    app_factory="crm_profile.app:create_app", migrations="crm_profile:migrations", subscribes=TOPICS)


def create_app(settings: ProfileSettings | None = None) -> FastAPI:
    return build_app(SERVICE, settings or ProfileSettings(), routers=[api.router], handlers=HANDLERS,
                     description="The customer archive: identity, purchase statistics and the customer-360 source.")
