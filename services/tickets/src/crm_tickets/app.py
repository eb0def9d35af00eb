"""The tickets service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from crm_shared.service import ServiceSpec, build_app
from fastapi import FastAPI

from crm_tickets import api
from crm_tickets.handlers import HANDLERS, TOPICS
from crm_tickets.settings import TicketsSettings

SERVICE = ServiceSpec(
    name="tickets", title="CRM tickets service", default_port=8003, settings_class=TicketsSettings,
    app_factory="crm_tickets.app:create_app", migrations="crm_tickets:migrations", subscribes=TOPICS)


def create_app(settings: TicketsSettings | None = None) -> FastAPI:
    return build_app(SERVICE, settings or TicketsSettings(), routers=[api.router], handlers=HANDLERS,
                     description="Complaints and after-sales tickets with SLAs, assignment and satisfaction.")
