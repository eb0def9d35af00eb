"""A campaign's results: its contacts by group, its messages by status, its actions, and its lift."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field


class ContactCounts(BaseModel):
    treatment: int = Field(description="Contacts acted on (state done, group treatment).")
    control: int = Field(description="Contacts recorded in the control group (done, not contacted).")
    holdout: int
    pending: int
    skipped: dict[str, int] = Field(description="Skipped contacts by reason.")


class MessageCounts(BaseModel):
    """Messages that reached each stage (a clicked message was also delivered and opened)."""

    sent: int
    delivered: int
    opened: int
    clicked: int
    bounced: int
    failed: int
    unsubscribed: int
    suppressed: int


class CouponCounts(BaseModel):
    issued: int
    redeemed: int = Field(description="Issued coupons an order used (and did not release by a cancel).")


class GroupRead(BaseModel):
    customers: int
    converted: int
    revenue: Decimal


class LiftRead(BaseModel):
    confidence: float
    currency: str = Field(description="Revenue counts orders in this currency only (the service's VALUE_CURRENCY).")
    treatment: GroupRead
    control: GroupRead
    treatment_rate: float | None
    control_rate: float | None
    difference: float | None = Field(description="Treatment rate − control rate (0..1).")
    difference_interval: tuple[float, float] | None
    relative_lift: float | None
    significant: bool
    treatment_revenue_per_customer: Decimal | None
    control_revenue_per_customer: Decimal | None
    revenue_difference: Decimal | None
    revenue_interval: tuple[Decimal, Decimal] | None
    revenue_significant: bool


class ResultsRead(BaseModel):
    campaign_id: str
    contacts: ContactCounts
    messages: MessageCounts
    coupons: CouponCounts
    points_granted: int
    conversion_days: int = Field(description="An order paid within this many days after the contact converts it.")
    lift: LiftRead
