"""Request and response models of the churn API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

Level = Literal["low", "medium", "high"]


class ReasonRead(BaseModel):
    factor: str = Field(description="A stable key, e.g. overdue, sla_breaches_90d, bgnbd_no_purchase.")
    contribution: float = Field(description="Log-odds this factor adds against the average customer.")
    detail: str | None = Field(None, description="The factor in words, for an agent.")


class ChurnScoreRead(BaseModel):
    customer_id: str
    score: float = Field(description="Calibrated probability of no paid order within the horizon (90 days).")
    level: Level
    previous_level: Level | None = None
    level_changed_at: datetime
    p_alive: float = Field(description="BG/NBD P(alive); always 1 for a one-time buyer (see one_time_buyer).")
    expected_orders_90d: float
    one_time_buyer: bool
    value_12m: Decimal = Field(description="Net spend in the last 12 months, in `currency`.")
    value_at_risk: Decimal = Field(description="score × value_12m.")
    currency: str | None = None
    reasons: list[ReasonRead]
    indicators: dict[str, float | None] = Field(
        description="What the score was computed from, in days and counts: orders, days_since_last_order, "
                    "customer_age_days, mean_gap_days, last_gap_days, activity_7d/30d/90d, activity_prev_60d, "
                    "complaints_90d, open_tickets, sla_breaches_90d, last_csat.")
    model_version: str
    scored_at: datetime


class ChurnScorePage(BaseModel):
    items: list[ChurnScoreRead]
    next_cursor: str | None = None


class ModelRead(BaseModel):
    version: str
    kind: Literal["prior", "bgnbd", "logistic"] = Field(
        description="prior: the 2005 paper's CDNOW parameters, before the first fit; bgnbd: fitted BG/NBD alone "
                    "(history shorter than the horizon); logistic: BG/NBD calibrated with the indicators.")
    trained_at: datetime | None = None
    created_by: str | None = None
    duration_s: float | None = None
    params: dict[str, Any]
    report: dict[str, Any] = Field(description="Backtest method and holdout metrics (AUC, precision at the top "
                                               "10 %, calibration error), coefficients, training figures.")


class RefitRead(ModelRead):
    rescored: int
    level_changes: int
    rescore_s: float


class LevelShare(BaseModel):
    level: Level
    customers: int
    value_at_risk: dict[str, Decimal] = Field(description="Score × 12-month spend, summed, per currency.")


class ScoreBin(BaseModel):
    from_: float = Field(alias="from", serialization_alias="from")
    to: float
    customers: int

    model_config = {"populate_by_name": True}


class DistributionRead(BaseModel):
    customers: int = Field(description="Scored customers (those with a paid order).")
    by_level: list[LevelShare]
    score_bins: list[ScoreBin] = Field(description="Scores in ten equal-width bins, [from, to).")
