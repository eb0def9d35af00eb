"""Coupons: pools, codes, issuing, revocation and validation."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from crm_loyalty.schemas.base import Text, _Body

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



class CouponPoolPage(BaseModel):
    items: list[CouponPoolRead]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end.")

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
