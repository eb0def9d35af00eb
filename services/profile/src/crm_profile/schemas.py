"""Request and response models of the profile API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from crm_shared.events.fields import Locale, TimeZoneName
from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class ConsentRead(BaseModel):
    granted: bool | None = None
    changed_at: datetime | None = Field(default=None, description="When it last changed (shop or agent).")
    source: str | None = Field(default=None, description="Who changed it: the event source, or agent:<id>.")


class ConsentsRead(BaseModel):
    email: ConsentRead
    sms: ConsentRead


class CategoryRead(BaseModel):
    category: str
    quantity: int
    last_bought_at: datetime


class ActivityRead(BaseModel):
    """Interactions (page and product views, searches, e-mail clicks, …) in the last days."""

    last_7_days: int = 0
    last_30_days: int = 0
    last_90_days: int = 0


class OrderItemRead(BaseModel):
    sku: str
    category: str | None = None
    quantity: int
    unit_price: str


class OrderRead(BaseModel):
    order_id: str
    status: Literal["placed", "paid", "completed", "cancelled", "refunded", "partially_refunded"]
    currency: str
    total_amount: str
    refunded_amount: str
    channel: str | None = None
    items: list[OrderItemRead]
    placed_at: datetime | None = None
    paid_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None


class OrderPage(BaseModel):
    items: list[OrderRead]
    next_cursor: str | None = None


class TimelineEntryRead(BaseModel):
    occurred_at: datetime
    kind: str = Field(description="interaction.<kind>, order.<placed|paid|completed|cancelled|refunded>, "
                                  "loyalty.tier_changed or churn.risk_changed.")
    channel: str | None = None
    details: dict
    event_id: str


class TimelinePage(BaseModel):
    items: list[TimelineEntryRead]
    next_cursor: str | None = None


class ProfileRead(BaseModel):
    customer_id: str
    pii: Literal["clear", "masked"] = Field(
        description="masked: e-mail, phone, name and address are partly hidden (the caller may not see PII, or "
                    "did not ask to reveal it); clear: shown as stored.")
    email: str | None = None
    phone: str | None = Field(default=None, description="E.164.")
    name: str | None = None
    address: str | None = None
    birthday: date | None = None
    gender: str | None = None
    city: str | None = None
    registered_at: datetime | None = None
    locale: str | None = Field(default=None, description="The language to write to the customer in (BCP 47, "
                                                         "\"zh-CN\"), from the shop's customer events.")
    time_zone: str | None = Field(default=None, description="The customer's IANA time zone (\"Asia/Shanghai\").")
    consents: ConsentsRead
    tags: list[str] = Field(default_factory=list, description="Staff's tags (empty in the customer's own view).")
    external_ids: dict[str, str] = Field(default_factory=dict, description="By kind; masked like the other PII.")
    order_count: int = Field(description="Paid orders.")
    total_spent: dict[str, str] = Field(
        description="Net spend per ISO 4217 currency (paid minus refunded), as decimal strings.",
        examples=[{"CNY": "1299.00"}])
    refunded: dict[str, str] = Field(default_factory=dict, description="Refunded per currency.")
    average_order_value: dict[str, str] = Field(
        default_factory=dict, description="Net spend divided by paid orders, per currency.")
    return_rate: float = Field(0.0, description="Share of paid orders with a refund (0 to 1).")
    categories: list[CategoryRead] = Field(default_factory=list, description="Most bought first (top 10).")
    favourite_categories: list[str] = Field(
        default_factory=list, description="Top 5 by purchases and product views (a unit bought = 3 views).")
    activity: ActivityRead
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    rfm: RfmRead | None = Field(default=None, description="null until the customer's first order is scored, and "
                                                          "in the customer's own view.")
    segments: list[str] = Field(default_factory=list, description="Custom segments the customer is in (empty in "
                                                                 "the customer's own view).")
    tier: str | None = Field(default=None, description="Membership tier, from the loyalty service's events.")
    churn_level: str | None = Field(default=None, description="Churn risk level, from the churn service's events "
                                                              "(null in the customer's own view).")
    erased_at: datetime | None = Field(default=None, description="Set once the customer's PII was erased.")
    merged_into: str | None = Field(default=None, description="Set when this profile was merged into another.")
    updated_at: datetime


ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ExternalKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,30}$")]
ExternalValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50, pattern=r"^[\w .:-]+$")]


class ConsentsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown consent channel is an error, not ignored

    email: bool | None = None
    sms: bool | None = None


class ProfileUpdate(BaseModel):
    """An agent's correction of a customer's data. Fields left out are not changed."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)] | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None = None
    name: ShortText | None = None
    address: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] | None = None
    birthday: date | None = None
    gender: Literal["female", "male", "other", "unknown"] | None = None
    city: ShortText | None = None
    consents: ConsentsUpdate | None = None
    locale: Locale | None = None
    time_zone: TimeZoneName | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    external_ids: dict[ExternalKind, ExternalValue] | None = Field(
        default=None, max_length=20, description="Identifiers in other systems, by kind: {\"erp\": \"E-1001\"}. "
                                                 "Added or replaced, one per kind.")


class CustomerMatch(BaseModel):
    customer_id: str
    name: str | None = Field(description="Masked.")
    email: str | None = Field(description="Masked.")
    phone: str | None = Field(description="Masked.")
    city: str | None = None


class SearchResult(BaseModel):
    items: list[CustomerMatch]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class PiiAccessRead(BaseModel):
    accessed_at: datetime
    actor: str
    role: str
    customer_id: str
    fields: list[str]
    reason: str
    request_id: str | None = None


class PiiAccessPage(BaseModel):
    items: list[PiiAccessRead]
    next_cursor: str | None = None


SegmentId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{1,62}$")]


class RfmRead(BaseModel):
    r: int = Field(description="Recency score, 1–5 (5: bought most recently).")
    f: int = Field(description="Frequency score, 1–5.")
    m: int = Field(description="Monetary score, 1–5 (net spend in RFM_CURRENCY).")
    segment: str = Field(description="champions, loyal, potential, new, at_risk, cannot_lose, hibernating or lost.")
    scored_at: datetime = Field(description="When these scores were set (a refresh keeps unchanged ones).")


class SegmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment_id: SegmentId = Field(description="Lower-case letters, digits, - and _; never starts with rfm.")
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    rule: dict = Field(description="Conditions with all/any/not; see docs/profile.md.",
                       examples=[{"all": [{"bought": {"category": "tea", "within_days": 90}},
                                          {"no_order_within_days": 30}]}])


class SegmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    rule: dict


class SegmentRead(BaseModel):
    segment_id: str
    name: str
    description: str | None = None
    rule: dict | None = Field(description="null for the RFM segments (rfm:<name>).")
    members: int
    created_by: str | None = None
    updated_at: datetime | None = None


class RfmGridCell(BaseModel):
    r: int = Field(description="Recency score, 1–5 (5: bought most recently).")
    f: int = Field(description="Frequency score, 1–5.")
    customers: int = Field(description="Customers with these two scores (erased customers not counted).")
    value: str = Field(description="Their net spend (paid minus refunded) in `currency`, as a decimal string.")


class RfmGridRead(BaseModel):
    currency: str = Field(description="ISO 4217: the RFM currency (RFM_CURRENCY), the only one counted in `value`.")
    scored_at: datetime | None = Field(description="The latest RFM score in the grid; null before the first refresh.")
    customers: int = Field(description="Customers with RFM scores, in all 25 cells.")
    value: str = Field(description="Their net spend in `currency`.")
    cells: list[RfmGridCell] = Field(description="All 25 cells (empty ones as zeros): R from 5 down to 1, "
                                                 "and within each R, F from 1 to 5.")


class SegmentMember(BaseModel):
    customer_id: str
    entered_at: datetime | None = None


class SegmentMemberPage(BaseModel):
    items: list[SegmentMember]
    next_cursor: str | None = None


class RefreshRead(BaseModel):
    scored: int = Field(description="Customers given RFM scores.")
    membership_changes: int


class DuplicateRead(BaseModel):
    customer_id: str
    shared: list[Literal["email", "phone"]] = Field(description="Which normalised identifiers are the same.")


class MergeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duplicate_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="The profile merged into this one; only its id remains, pointing here.")
    identifier: Literal["email", "phone"] = Field(description="The identifier both share, verified with the customer.")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]


class MergeRead(BaseModel):
    customer_id: str
    merged_customer_id: str
    order_count: int
    merged_at: datetime


class UnmergeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duplicate_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="The profile that was merged into this one and is to stand on its own again.")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)] = Field(
        description="Why the merge was wrong (kept in the merge journal).")


class UnmergeRead(BaseModel):
    customer_id: str
    unmerged_customer_id: str
    order_count: int = Field(description="This profile's paid orders after the unmerge.")
    unmerged_order_count: int = Field(description="The restored profile's paid orders.")
    unmerged_at: datetime
    unmerged_by: str


class ErasureCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)] = Field(
        description="Why (the customer's request reference, a legal basis); kept in the privacy journal.")


class ErasureRead(BaseModel):
    customer_id: str
    erased_at: datetime
    erased_by: str
    merged_customer_ids: list[str] = Field(default_factory=list,
                                           description="The duplicates merged into it, erased with it.")


class ProfileExport(BaseModel):
    """Everything the CRM's profile service holds about a customer."""

    exported_at: datetime
    profile: ProfileRead
    orders: list[dict]
    timeline: list[dict]
    consent_changes: list[dict]
    notes: list[dict] | None = Field(description="Staff's internal notes; null in the customer's own export.")
    categories: list[dict]
    pii_access_log: list[dict] | None = Field(
        description="Who saw the PII in clear; null in the customer's own export.")
    privacy_requests: list[dict]


class NoteCreate(BaseModel):
    body: str = Field(min_length=1, max_length=4000, description="What the agent wants colleagues to know.")


class NoteRead(BaseModel):
    note_id: UUID
    customer_id: str
    author: str = Field(description="The agent or supervisor who wrote it.")
    body: str
    created_at: datetime
