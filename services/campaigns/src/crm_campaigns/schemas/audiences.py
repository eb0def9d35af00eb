"""Audiences: a name and a definition (the filters of repository/audiences.py), and their estimate."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from crm_campaigns.domain.audience import CHURN_LEVELS, LOCALES, RFM_SEGMENTS, AudienceInvalid, check_audience


class Body(BaseModel):
    """A request body: unknown keys are refused (422), so a misspelt filter never widens an audience."""

    model_config = ConfigDict(extra="forbid")


Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
# Ids a marketer may choose (slugs) or the service generates (UUIDs): safe in a path and a log.
ResourceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Labels = Annotated[list[Label], Field(max_length=100)]
Days = Annotated[int, Field(ge=1, le=3650)]
Count = Annotated[int, Field(ge=0, le=1_000_000_000)]
Money = Annotated[Decimal, Field(ge=0, lt=Decimal("1e10"), decimal_places=4)]
Score = Annotated[float, Field(ge=0, le=1)]


class AudienceDefinition(Body):
    """Every filter is optional; they combine with AND. The channel's consent is always required."""

    segments_any: Labels | None = Field(None, description="In at least one of these segments.")
    segments_all: Labels | None = Field(None, description="In every one of these segments.")
    segments_none: Labels | None = Field(None, description="In none of these segments.")
    rfm_segments: list[Literal[RFM_SEGMENTS]] | None = None  # type: ignore[valid-type]
    tiers: Labels | None = None
    churn_levels: list[Literal[CHURN_LEVELS]] | None = None  # type: ignore[valid-type]
    churn_score_min: Score | None = None
    churn_score_max: Score | None = None
    value_min: Money | None = Field(None, description="Lifetime spend in the service's VALUE_CURRENCY.")
    value_max: Money | None = None
    orders_min: Count | None = None
    orders_max: Count | None = None
    last_order_within_days: Days | None = None
    no_order_for_days: Days | None = Field(None, description="No order for this long, or never.")
    categories_any: Labels | None = None
    birthday_month: Annotated[int, Field(ge=1, le=12)] | None = None
    points_min: Count | None = None
    locales: list[Literal[LOCALES]] | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _consistent(self) -> AudienceDefinition:
        try:
            check_audience(self.model_dump(exclude_none=True))
        except AudienceInvalid as error:
            raise ValueError(str(error)) from None
        return self

    def stored(self) -> dict[str, Any]:
        """As kept in the database: only the filters set, money as decimal strings."""
        return self.model_dump(mode="json", exclude_none=True)


class AudienceSettings(Body):
    name: Name
    definition: AudienceDefinition


class AudienceUpdate(AudienceSettings):
    version: int = Field(ge=1, description="The version read; another one in force answers 409.")


class AudienceCreate(AudienceSettings):
    audience_id: ResourceId | None = Field(None, description="Absent: a UUID is generated.")


class AudienceRead(BaseModel):
    audience_id: str
    name: str
    definition: dict[str, Any]
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class EstimateRead(BaseModel):
    audience_id: str
    size: int = Field(description="Members matching now who consent to the channel (if it needs consent).")
    channel: str | None
    as_of: datetime
