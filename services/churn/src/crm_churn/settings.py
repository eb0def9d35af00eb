"""Settings of the churn service (environment variables, see README and docs/churn.md)."""

from __future__ import annotations

from typing import Annotated

from crm_shared.settings import ServiceSettings
from pydantic import Field, model_validator


class ChurnSettings(ServiceSettings):
    service_name: str = "churn"
    http_port: int = 8004
    # A customer churns when they place no paid order within this many days after being scored.
    churn_horizon_days: Annotated[int, Field(ge=7, le=730)] = 90
    # Levels: medium from this probability, high from the next.
    churn_level_medium: Annotated[float, Field(gt=0, lt=1)] = 0.4
    churn_level_high: Annotated[float, Field(gt=0, lt=1)] = 0.7
    # The model is refitted on this schedule (and on demand, POST /v1/churn/model/refit).
    refit_interval_s: Annotated[float, Field(gt=0)] = 86_400.0
    refit_first_delay_s: Annotated[float, Field(ge=0)] = 60.0
    # Fewer customers with a purchase than this: no fit (the model stays as it is).
    refit_min_customers: Annotated[int, Field(ge=10)] = 50
    # Customers rescored per transaction after a refit.
    rescore_chunk: Annotated[int, Field(ge=100, le=50_000)] = 5000

    @model_validator(mode="after")
    def _levels_in_order(self) -> ChurnSettings:
        if self.churn_level_medium >= self.churn_level_high:
            raise ValueError("CHURN_LEVEL_MEDIUM must be below CHURN_LEVEL_HIGH")
        return self
