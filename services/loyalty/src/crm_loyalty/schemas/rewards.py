"""The reward catalogue: rewards, their redemptions and fulfilment."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from crm_loyalty.schemas.base import Text, _Body

# -- the reward catalogue --------------------------------------------------------------------------

RewardId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
RewardKind = Literal["gift", "cash_voucher", "coupon", "free_shipping"]
FulfilmentStatus = Literal["requested", "shipped", "delivered", "cancelled"]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]


class RewardSpec(_Body):
    """The editable fields of a reward (a PUT replaces them all)."""

    name: Text
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    kind: RewardKind
    points_price: Annotated[int, Field(gt=0, le=100_000_000)]
    cash_price: Annotated[Decimal, Field(gt=0, le=Decimal("1000000"), decimal_places=4)] | None = Field(
        None, description="Paid to the shop at fulfilment on top of the points (points + cash); the CRM records "
                          "what is due.")
    cash_currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    sku: Text | None = Field(None, description="The shop's article, for gifts.")
    coupon_pool_id: Text | None = Field(None, description="The coupon pool a digital reward's coupon comes from "
                                                          "(required for cash_voucher, coupon, free_shipping).")
    stock: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = Field(None, description="Units left; null: "
                                                                                            "unlimited.")
    available_from: datetime | None = None
    available_until: datetime | None = None
    eligible_tiers: Annotated[list[Tag], Field(max_length=20)] = Field(
        default_factory=list, description="Tiers that may redeem it; empty: every tier.")
    eligible_segments: Annotated[list[Tag], Field(max_length=50)] = Field(
        default_factory=list, description="Segments (a member must be in at least one); empty: everyone.")
    per_customer_limit: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        None, description="Units one member may redeem per period (cancelled ones aside); null: no limit.")
    limit_period_days: Annotated[int, Field(ge=1, le=3660)] | None = Field(
        None, description="The limit's rolling period in days; null: over the member's whole history.")
    active: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> RewardSpec:
        if self.kind != "gift" and not self.coupon_pool_id:
            raise ValueError(f"a {self.kind} reward needs coupon_pool_id")
        if (self.cash_price is None) != (self.cash_currency is None):
            raise ValueError("cash_price and cash_currency go together")
        if self.limit_period_days is not None and self.per_customer_limit is None:
            raise ValueError("limit_period_days needs per_customer_limit")
        for moment in (self.available_from, self.available_until):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("available_from and available_until must carry a timezone")
        if self.available_from and self.available_until and self.available_from >= self.available_until:
            raise ValueError("available_from must be before available_until")
        return self


class RewardCreate(RewardSpec):
    reward_id: RewardId = Field(description="A slug chosen by the supervisor, e.g. mug-2026.")


class RewardRead(BaseModel):
    reward_id: str
    name: str
    description: str | None
    kind: RewardKind
    points_price: int
    cash_price: Decimal | None
    cash_currency: str | None
    sku: str | None
    coupon_pool_id: str | None
    stock: int | None
    redeemed_count: int
    available_from: datetime | None
    available_until: datetime | None
    eligible_tiers: list[str]
    eligible_segments: list[str]
    per_customer_limit: int | None
    limit_period_days: int | None
    active: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Send it back as If-Match on PUT.")
    eligible: bool | None = Field(None, description="With ?customer_id=: whether that member may redeem one now.")
    reason: str | None = Field(None, description="With ?customer_id=: why not.")


class RewardPage(BaseModel):
    items: list[RewardRead]
    next_cursor: str | None


class RewardRedemptionCreate(_Body):
    reward_id: RewardId
    quantity: Annotated[int, Field(ge=1, le=10)] = 1
    reason: Text | None = None


class FulfilmentEntryRead(BaseModel):
    status: FulfilmentStatus
    at: datetime
    actor: str
    note: str | None


class RewardRedemptionRead(BaseModel):
    redemption_id: str
    customer_id: str
    reward_id: str
    reward_name: str | None
    kind: RewardKind | None = None
    quantity: int
    points: int
    points_returned: int = 0
    cash_due: Decimal | None
    cash_currency: str | None
    fulfilment_status: FulfilmentStatus
    coupon_id: str | None = None
    coupon_codes: list[str] = Field(default_factory=list, description=(
        "The codes a digital reward issued (only in the answer to the redemption; the member reads them later "
        "from GET /v1/loyalty/accounts/{customer_id}/coupons)."))
    created_at: datetime
    available_after: int | None = None
    history: list[FulfilmentEntryRead] | None = None


class FulfilmentUpdate(_Body):
    status: FulfilmentStatus
    note: Annotated[str, StringConstraints(max_length=500, strip_whitespace=True)] | None = None
