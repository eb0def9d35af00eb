"""Settings of the loyalty service (environment variables, see README)."""

from __future__ import annotations

from typing import Annotated

from crm_shared.settings import Environment, ServiceSettings
from pydantic import Field, model_validator


class LoyaltySettings(ServiceSettings):
    service_name: str = "loyalty"
    http_port: int = 8002
    # The scheduled jobs (release, expiry, notices, tier downgrades, birthdays) run this often.
    jobs_interval_s: Annotated[float, Field(gt=0)] = 3600.0
    jobs_first_delay_s: Annotated[float, Field(ge=0)] = 60.0
    # Lets supervisors run a job "as of" another moment (tests and demos of expiry and birthdays).
    # Refused in production: it would let anyone with the role expire points early.
    jobs_accept_as_of: bool = False
    # How often the liability and points gauges are recomputed from the accounts and the ledger.
    metrics_refresh_s: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _no_time_travel_in_prod(self) -> LoyaltySettings:
        if self.environment is Environment.PROD and self.jobs_accept_as_of:
            raise ValueError("JOBS_ACCEPT_AS_OF may not be set in production")
        return self
