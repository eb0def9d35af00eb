"""The churn service's app: its spec and the one place its resources are built."""

from __future__ import annotations

from crm_shared.service import ServiceSpec, build_app
from fastapi import FastAPI

from crm_churn import api
from crm_churn.handlers import HANDLERS, TOPICS
from crm_churn.settings import ChurnSettings

SERVICE = ServiceSpec(
    name="churn", title="CRM churn service", default_port=8004, settings_class=ChurnSettings,
    app_factory="crm_churn.app:create_app", migrations="crm_churn:migrations", subscribes=TOPICS)


def create_app(settings: ChurnSettings | None = None) -> FastAPI:
    return build_app(SERVICE, settings or ChurnSettings(), routers=[api.router], handlers=HANDLERS,
                     description="Calibrated churn early warning with reasons, and win-back triggers.")
