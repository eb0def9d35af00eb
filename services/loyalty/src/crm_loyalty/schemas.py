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


# -- coupons ---------------------------------------------------------------------------------------
# Money in and out as decimal strings ("12.50"); a code appears only where its owner or the
# issuer reads it (issue answer, the account's coupons), never in a path.

PoolId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
CouponCurrency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, Field(ge=0, lt=Decimal("1e10"), decimal_places=4)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=200)]
CustomerIdField = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]


class CouponPoolSettings(_Body):
    name: Text
    discount_kind: Literal["percent", "amount", "free_shipping"]
    percent: Annotated[Decimal, Field(gt=0, le=100, decimal_places=4)] | None = None
    amount: Annotated[Decimal, Field(gt=0, lt=Decimal("1e10"), decimal_places=4)] | None = None
    currency: CouponCurrency | None = Field(None, description="Required with an amount or a minimum spend.")
    min_spend: Money | None = Field(None, description="Of the eligible lines, in the pool's currency.")
    categories: list[Category] = Field(default_factory=list, max_length=100,
                                       description="Empty: the whole cart; else only lines in these categories "
                                                   "are discounted and count towards the minimum spend.")
    prefix: Annotated[str, StringConstraints(pattern=r"^[0-9A-HJKMNP-TV-Z]{1,8}$")] | None = Field(
        None, description="Put before every code of the pool for readability (letters and digits, no I L O U).")
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    validity_days: Annotated[int, Field(ge=1, le=3650)] | None = Field(
        None, description="A code is valid this many days from its issue (never past valid_until).")
    per_customer_limit: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    global_limit: Annotated[int, Field(ge=1, le=2_000_000_000)] | None = None
    active: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> CouponPoolSettings:
        if (self.discount_kind == "percent") != (self.percent is not None):
            raise ValueError("percent is required for a percent pool and only for it")
        if (self.discount_kind == "amount") != (self.amount is not None):
            raise ValueError("amount is required for an amount pool and only for it")
        if (self.amount is not None or self.min_spend is not None) and self.currency is None:
            raise ValueError("an amount or a minimum spend needs a currency")
        for moment in (self.valid_from, self.valid_until):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("valid_from and valid_until must carry a timezone")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class CouponPoolCreate(CouponPoolSettings):
    pool_id: PoolId


class CouponPoolRead(BaseModel):
    pool_id: str
    name: str
    discount_kind: str
    percent: Decimal | None
    amount: Decimal | None
    currency: str | None
    min_spend: Decimal | None
    categories: list[str]
    prefix: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    validity_days: int | None
    per_customer_limit: int | None
    global_limit: int | None
    issued_count: int
    used_count: int = Field(description="Uses applied and not released, across the pool's codes.")
    active: bool
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class CouponIssue(_Body):
    customer_id: CustomerIdField | None = Field(None, description="Personal codes (one use each, this "
                                                                  "customer's only); omit for generic codes.")
    count: Annotated[int, Field(ge=1, le=1000)] = 1


class IssuedCouponRead(BaseModel):
    coupon_id: str
    code: str
    pool_id: str
    customer_id: str | None
    valid_from: datetime
    valid_until: datetime | None


class CouponIssueRead(BaseModel):
    coupons: list[IssuedCouponRead]


class CouponUseRead(BaseModel):
    order_id: str
    customer_id: str
    status: Literal["applied", "released", "refused"]
    reason: str | None
    discount: Decimal
    currency: str
    at: datetime
    released_at: datetime | None


class CouponRead(BaseModel):
    coupon_id: str
    pool_id: str
    customer_id: str | None
    issued_by: str
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime | None
    max_uses: int | None
    uses: int
    status: Literal["active", "revoked"]
    revoked_at: datetime | None
    revoke_reason: str | None
    order_uses: list[CouponUseRead] = Field(description="Every order that named the code: applied, released "
                                                        "(cancelled) or refused, with the reason.")


class AccountCouponRead(BaseModel):
    coupon_id: str
    code: str
    pool_id: str
    valid_from: datetime
    valid_until: datetime | None
    max_uses: int | None
    uses: int
    status: Literal["active", "revoked"]


class CouponRevocation(_Body):
    reason: Text | None = None


class CartItem(_Body):
    sku: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    category: Category | None = None
    quantity: Annotated[int, Field(gt=0, le=1_000_000)]
    unit_price: Money


class CouponValidate(_Body):
    code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    customer_id: CustomerIdField | None = Field(None, description="Required for a personal code; a customer "
                                                                  "caller may only name themselves.")
    currency: CouponCurrency
    items: list[CartItem] = Field(default_factory=list, max_length=1000)
    subtotal: Money | None = Field(None, description="The cart's value, when no items are sent.")
    shipping: Money = Field(Decimal(0), description="What shipping costs: the discount of a free-shipping code.")

    @model_validator(mode="after")
    def _cart(self) -> CouponValidate:
        if not self.items and self.subtotal is None:
            raise ValueError("send the cart's items or its subtotal")
        return self


class CouponValidationRead(BaseModel):
    valid: bool
    coupon_id: str | None = None
    pool_id: str | None = None
    discount: str | None = Field(None, description="Off the cart, to the cent, rounded down.")
    currency: str | None = None
    free_shipping: bool = False
    reason: Literal["not_found", "not_started", "expired", "used_up", "minimum_not_met", "not_this_customers",
                    "wrong_currency", "no_eligible_items", "revoked"] | None = None
    detail: str | None = None
