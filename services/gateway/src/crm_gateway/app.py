"""The gateway service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from crm_shared.service import ServiceSpec, build_app
from fastapi import FastAPI

from crm_gateway import api
from crm_gateway.handlers import HANDLERS, TOPICS
from crm_gateway.settings import GatewaySettings

SERVICE = ServiceSpec(
    name="gateway", title="CRM gateway", default_port=8000, settings_class=GatewaySettings,
    app_factory="crm_gateway.app:create_app", migrations="crm_gateway:migrations", subscribes=TOPICS)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    return build_app(SERVICE, settings or GatewaySettings(), routers=[api.router], handlers=HANDLERS,
                     description="The one public entry for storefront and call-centre apps.")
