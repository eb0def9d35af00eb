"""The loyalty service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from crm_shared.service import ServiceSpec, build_app
from fastapi import FastAPI

from crm_loyalty import api
from crm_loyalty.handlers import HANDLERS, TOPICS
from crm_loyalty.settings import LoyaltySettings

SERVICE = ServiceSpec(
    name="loyalty", title="CRM loyalty service", default_port=8002, settings_class=LoyaltySettings,
    app_factory="crm_loyalty.app:create_app", migrations="crm_loyalty:migrations", subscribes=TOPICS)


def create_app(settings: LoyaltySettings | None = None) -> FastAPI:
    return build_app(SERVICE, settings or LoyaltySettings(), routers=[api.router], handlers=HANDLERS,
                     description="Membership tiers and the points ledger.")
