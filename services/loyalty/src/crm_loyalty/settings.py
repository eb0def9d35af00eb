"""Settings of the loyalty service (environment variables, see README)."""

from __future__ import annotations

from typing import Annotated

from crm_shared.settings import ServiceSettings
from pydantic import Field


class LoyaltySettings(ServiceSettings):
    service_name: str = "loyalty"
    http_port: int = 8002
    # The scheduled jobs (release, expiry, notices, tier downgrades, birthdays) run this often.
    jobs_interval_s: Annotated[float, Field(gt=0)] = 3600.0
    jobs_first_delay_s: Annotated[float, Field(ge=0)] = 60.0
