"""Request and response models of the loyalty API (``*Create`` / ``*Read``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from crm_loyalty.domain.programme import Programme

Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpiryRead(BaseModel):
    expires_at: datetime
    points: int


class AccountRead(BaseModel):
    customer_id: str
    tier: str
    tier_since: datetime
    tier_grace_since: datetime | None = Field(description="Below the tier's thresholds since; the daily job "
                                                          "downgrades after the grace period.")
    available: int = Field(description="Points that can be spent now.")
    pending: int = Field(description="Points earned on orders whose return window is still open.")
    debt: int = Field(description="Points taken back after they were spent; paid off first from new points.")
    lifetime_earned: int
    expiring_30d: int = Field(description="Available points that expire within 30 days.")
    next_expiry: ExpiryRead | None
    cash_value: dict[str, str] = Field(description="What the available points are worth off an order, "
                                                   "per currency.")


class LedgerEntryRead(BaseModel):
    entry_id: int
    kind: str
    points: int = Field(description="In the customer's favour: available + pending - debt.")
    available_delta: int
    pending_delta: int
    debt_delta: int
    reason: str
    order_id: str | None
    redemption_id: str | None
    actor: str | None
    ticket_id: str | None
    campaign: str | None
    business_at: datetime = Field(description="When it happened in the shop.")
    recorded_at: datetime = Field(description="When the ledger recorded it.")


class LedgerPage(BaseModel):
    items: list[LedgerEntryRead]
    next_cursor: str | None


class BalanceRead(BaseModel):
    customer_id: str
    as_of: datetime
    available: int
    pending: int
    debt: int


class RedemptionCreate(_Body):
    points: Annotated[int, Field(gt=0, le=100_000_000)]
    kind: Literal["gift", "order_discount"]
    gift_sku: Text | None = None
    order_id: Text | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    reason: Text | None = None

    @model_validator(mode="after")
    def _target(self) -> RedemptionCreate:
        if self.kind == "gift" and not self.gift_sku:
            raise ValueError("a gift redemption needs gift_sku")
        if self.kind == "order_discount" and not (self.order_id and self.currency):
            raise ValueError("an order discount needs order_id and currency")
        return self


class RedemptionRead(BaseModel):
    redemption_id: str
    customer_id: str
    kind: str
    points: int
    points_returned: int
    money_value: Decimal | None
    currency: str | None
    order_id: str | None
    gift_sku: str | None
    available_after: int | None = None
    created_at: datetime
    status: Literal["held", "applied", "voided"] = Field(
        description="An order discount is held until the member's order is paid, then applied or voided "
                    "(points back); gifts are applied at once.")
    resolved_at: datetime | None = None
    void_reason: str | None = None


class AdjustmentCreate(_Body):
    points: Annotated[int, Field(ge=-100_000_000, le=100_000_000)]
    reason: Annotated[str, StringConstraints(min_length=3, max_length=200, strip_whitespace=True)]
    ticket_id: Text | None = None

    @model_validator(mode="after")
    def _nonzero(self) -> AdjustmentCreate:
        if self.points == 0:
            raise ValueError("an adjustment moves at least one point")
        return self


class AdjustmentRead(BaseModel):
    entry_id: int
    customer_id: str
    points: int
    reason: str
    ticket_id: str | None
    actor: str
    available_after: int
    debt_after: int


class ProgrammeRead(BaseModel):
    version: int
    effective_from: datetime
    created_by: str
    note: str | None
    created_at: datetime
    config: Programme


class ProgrammeUpdate(_Body):
    config: Programme
    note: Annotated[str, StringConstraints(max_length=500)] | None = None


class JobRead(BaseModel):
    job: str
    as_of: datetime
    members: int
    points: int


# -- reports ---------------------------------------------------------------------------------------

class PointsLiabilityRead(BaseModel):
    available: int = Field(description="Points members can spend now.")
    pending: int = Field(description="Points earned on orders whose return window is still open.")
    debt: int = Field(description="Points members owe back (spent, then the order was refunded).")
    members_owed: int = Field(description="Members holding available or pending points.")
    expiring_30d: int = Field(description="Available points that expire within 30 days.")
    expiring_90d: int = Field(description="Available points that expire within 90 days.")


class PointsValueRead(BaseModel):
    available: Decimal
    pending: Decimal


class LiabilityRead(BaseModel):
    as_of: datetime
    points: PointsLiabilityRead
    points_value: dict[str, PointsValueRead] = Field(
        description="What the points are worth off orders, per currency, at the programme's redemption rate.")


# -- earning rules ---------------------------------------------------------------------------------

class ReferralRead(BaseModel):
    """A referral the member made: the referred member, and whether it was paid or refused (why)."""

    referee_id: str
    registered_at: datetime
    status: Literal["pending", "paid", "refused"]
    reason: str | None
    paid_at: datetime | None
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
    created_at: datetime
    available_after: int | None = None
    history: list[FulfilmentEntryRead] | None = None


class FulfilmentUpdate(_Body):
    status: FulfilmentStatus
    note: Annotated[str, StringConstraints(max_length=500, strip_whitespace=True)] | None = None
