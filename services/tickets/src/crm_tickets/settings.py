"""Settings of the tickets service (environment variables, see README)."""

from __future__ import annotations

from typing import Annotated

from crm_shared.settings import Environment, ServiceSettings
from pydantic import Field, model_validator


class TicketsSettings(ServiceSettings):
    service_name: str = "tickets"
    http_port: int = 8003
    # The SLA scheduler looks for warnings and breaches this often.
    sla_scan_interval_s: Annotated[float, Field(gt=0)] = 30.0
    sla_scan_first_delay_s: Annotated[float, Field(ge=0)] = 5.0
    sla_scan_batch: Annotated[int, Field(ge=1, le=100_000)] = 5000
    # Lets supervisors run the SLA scan "as of" another moment (tests, demos); refused in production.
    jobs_accept_as_of: bool = False
    metrics_refresh_s: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _no_time_travel_in_prod(self) -> TicketsSettings:
        if self.environment is Environment.PROD and self.jobs_accept_as_of:
            raise ValueError("JOBS_ACCEPT_AS_OF may not be set in production")
        return self
