"""Accounts, the ledger, redemptions, adjustments, the programme, jobs, reports and referrals."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from crm_loyalty.domain.programme import Programme
from crm_loyalty.schemas.base import Text, _Body


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


class BonusCreate(_Body):
    """Bonus points by reference, for a campaign: ``reference`` pays a member once."""

    points: Annotated[int, Field(ge=1, le=100_000)]
    reason: Annotated[str, StringConstraints(min_length=3, max_length=200, strip_whitespace=True)]
    reference: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True,
                                                pattern=r"^[\w.:/-]+$")] = Field(
        description="What pays it, once per member: `campaign:<campaign_id>:<occurrence>`.",
        examples=["campaign:cmp-42:2026-12-01"])


class BonusRead(BaseModel):
    entry_id: int
    customer_id: str
    points: int
    reason: str
    reference: str
    available_after: int
    debt_after: int
    granted_by: str
    granted_at: datetime


class AdjustmentRead(BaseModel):
    entry_id: int
    customer_id: str
    points: int
    reason: str
    ticket_id: str | None
    actor: str
    available_after: int
    debt_after: int


class AdjustmentDecision(_Body):
    approve: bool
    note: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)] | None = None


class AdjustmentRequestRead(BaseModel):
    request_id: str
    customer_id: str
    points: int
    reason: str
    ticket_id: str | None
    requested_by: str
    requested_at: datetime
    status: Literal["pending", "approved", "rejected", "cancelled"]
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    entry_id: int | None = Field(description="The ledger entry an approval made.")


class AdjustmentRequestPage(BaseModel):
    items: list[AdjustmentRequestRead]
    next_cursor: str | None


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


class RewardsOwedEntry(BaseModel):
    redemptions: int
    units: int
    points: int = Field(description="Points spent on them (net of any given back).")


class RewardsOwedRead(BaseModel):
    by_status: dict[str, RewardsOwedEntry] = Field(
        description="Reward redemptions not yet delivered (requested, shipped): the shop owes the goods.")
    cash_due: dict[str, Decimal] = Field(description="The cash part of points + cash rewards still to collect.")


class CouponsKindRead(BaseModel):
    discount_kind: Literal["percent", "amount", "free_shipping"]
    currency: str | None
    coupons: int
    generic: int = Field(description="Generic codes among them (anyone may use them).")
    uses_left: int = Field(description="Bounded uses left: each personal code's own, and each pool's global uses "
                                       "left shared by its generic codes (counted once), capped by the pool's limit.")
    unbounded_pools: int = Field(description="Pools whose generic codes have no global limit: unbounded uses.")
    face_value: Decimal = Field(description="Amount coupons: the amount off times the bounded uses left "
                                            "(0 for percent and free shipping: their value depends on the cart).")


class CouponsOutstandingRead(BaseModel):
    outstanding: int = Field(description="Coupons still usable now: active, within validity, with a use left.")
    face_value: dict[str, Decimal] = Field(description="Per currency, of the fixed-amount coupons' uses left.")
    by_kind: list[CouponsKindRead]


class LiabilityRead(BaseModel):
    as_of: datetime
    points: PointsLiabilityRead
    points_value: dict[str, PointsValueRead] = Field(
        description="What the points are worth off orders, per currency, at the programme's redemption rate.")
    rewards_owed: RewardsOwedRead
    coupons: CouponsOutstandingRead


# -- earning rules ---------------------------------------------------------------------------------

class ReferralRead(BaseModel):
    """A referral the member made: the referred member, and whether it was paid or refused (why)."""

    referee_id: str
    registered_at: datetime
    status: Literal["pending", "paid", "refused"]
    reason: str | None
    paid_at: datetime | None
