"""Settings of the tickets service (environment variables, see README)."""

from __future__ import annotations

from typing import Annotated

from crm_shared.settings import ServiceSettings
from pydantic import Field


class TicketsSettings(ServiceSettings):
    service_name: str = "tickets"
    http_port: int = 8003
    # The SLA scheduler looks for warnings and breaches this often.
    sla_scan_interval_s: Annotated[float, Field(gt=0)] = 30.0
    sla_scan_first_delay_s: Annotated[float, Field(ge=0)] = 5.0
    sla_scan_batch: Annotated[int, Field(ge=1, le=100_000)] = 5000
