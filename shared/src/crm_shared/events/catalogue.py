"""The event catalogue: every event type the CRM knows, its topic and the model of its data.

The ``commerce.*`` types are the public contract other systems publish to (
documented in ``docs/asyncapi.yaml``); the ``crm.*`` types are what the services emit.
Money is a decimal string plus an ISO 4217 code, never a float; points are integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from crm_shared.events.campaigns import (
    CampaignMessageStatusChangedData,
    CampaignUnsubscribedData,
    LoyaltyCouponUseData,
    ProfileConsentChangedData,
)
from crm_shared.events.fields import (
    Amount,
    AwareDatetime,
    CurrencyCode,
    CustomerId,
    EventData,
    Locale,
    ShortText,
    TimeZoneName,
)
from crm_shared.events.profile import (
    ProfileBirthdayChangedData,
    ProfileCustomerErasedData,
    ProfileCustomerMergedData,
    ProfileCustomerUnmergedData,
    ProfileCustomerUpdatedData,
    ProfileSegmentChangedData,
)
from crm_shared.events.reward_catalogue import (
    LoyaltyRewardFulfilmentChangedData,
    LoyaltyRewardRedeemedData,
    RewardFulfilmentUpdatedData,
)

DATASCHEMA_BASE = "https://crm.example/schemas/"


class Consents(EventData):
    email: bool = False
    sms: bool = False


class CustomerData(EventData):
    """``commerce.customer.registered`` / ``commerce.customer.updated``."""

    customer_id: CustomerId
    email: Annotated[str, StringConstraints(max_length=320, strip_whitespace=True)] | None = None
    phone: Annotated[str, StringConstraints(max_length=40, strip_whitespace=True)] | None = None
    name: ShortText | None = None
    birthday: date | None = None
    gender: Annotated[str, StringConstraints(max_length=20)] | None = None
    city: ShortText | None = None
    registered_at: AwareDatetime | None = None
    consents: Consents | None = None
    # The member who referred this one (registration only): the loyalty referral rule pays both.
    referred_by: CustomerId | None = None
    # For campaigns: the language to write to the customer in and the zone of their local time.
    locale: Locale | None = None
    time_zone: TimeZoneName | None = None


class OrderItem(EventData):
    sku: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    category: ShortText | None = None
    quantity: Annotated[int, Field(gt=0, le=1_000_000)]
    unit_price: Amount


class OrderData(EventData):
    """``commerce.order.placed|paid|completed|cancelled``."""

    order_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    customer_id: CustomerId
    currency: CurrencyCode
    total_amount: Amount
    items: list[OrderItem] = Field(default_factory=list, max_length=1000)
    channel: ShortText | None = None
    occurred_at: AwareDatetime
    # An opaque token the payment provider gives for the card or wallet (never the card number):
    # the loyalty referral guard compares keyed digests of it.
    payment_fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    # Coupon codes the customer entered (optional; total_amount is then the value before their
    # discounts, which the CRM computes from the coupons' pools).
    coupon_codes: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = \
        Field(default_factory=list, max_length=10)


class OrderRefundedData(OrderData):
    """``commerce.order.refunded``: the refunded amount and, where known, the refunded items."""

    refund_amount: Amount
    refunded_items: list[OrderItem] = Field(default_factory=list, max_length=1000)


InteractionKind = Literal[
    "page_view", "product_view", "search", "cart_add", "cart_remove", "wishlist_add", "checkout_start",
    "email_open", "email_click", "sms_click", "push_open", "review", "chat", "call", "login",
]


class InteractionData(EventData):
    """``commerce.interaction.recorded``."""

    customer_id: CustomerId
    kind: InteractionKind
    channel: ShortText | None = None
    occurred_at: AwareDatetime
    attributes: dict[str, Any] = Field(default_factory=dict)


ChurnLevel = Literal["low", "medium", "high"]


class LoyaltyTierChangedData(EventData):
    """``crm.loyalty.tier.changed``: a member's tier changed (the loyalty service owns tiers)."""

    customer_id: CustomerId
    old_tier: ShortText | None = None
    new_tier: ShortText
    changed_at: AwareDatetime


LedgerKind = Literal["earn", "bonus", "redeem", "reverse", "refund_of_spent", "expire", "adjust"]


class LoyaltyPointsData(EventData):
    """``crm.loyalty.points.earned|redeemed|reversed|expired|adjusted``: one movement of a member's
    points (``points`` is signed, in the customer's favour) and the balances after it."""

    customer_id: CustomerId
    kind: LedgerKind
    points: int
    available: int
    pending: int
    debt: int = 0
    reason: ShortText
    order_id: ShortText | None = None
    redemption_id: ShortText | None = None
    occurred_at: AwareDatetime


class TicketData(EventData):
    """``crm.tickets.ticket.opened|assigned|resolved|closed|reopened``: a ticket's state after the change."""

    customer_id: CustomerId
    ticket_id: ShortText
    kind: ShortText
    category: ShortText | None = None
    priority: Literal["low", "normal", "high", "urgent"]
    status: Literal["new", "open", "pending_customer", "resolved", "closed"]
    group_id: ShortText | None = None
    assignee: ShortText | None = None
    root_cause: ShortText | None = None
    occurred_at: AwareDatetime


class TicketSlaData(EventData):
    """``crm.tickets.ticket.sla_warning|sla_breached``: a first-response or resolution target is near or missed."""

    customer_id: CustomerId
    ticket_id: ShortText
    target: Literal["first_response", "resolution"]
    due_at: AwareDatetime
    priority: Literal["low", "normal", "high", "urgent"]
    assignee: ShortText | None = None
    occurred_at: AwareDatetime


class CsatSubmittedData(EventData):
    """``crm.tickets.csat.submitted``: a customer rated how a resolved ticket was handled."""

    customer_id: CustomerId
    ticket_id: ShortText
    score: Annotated[int, Field(ge=1, le=5)]
    agent: ShortText | None = None
    group_id: ShortText | None = None
    submitted_at: AwareDatetime
    # The agent who recorded an answer the customer gave on the phone; None: the customer rated it.
    recorded_by: ShortText | None = None


# campaign_message: the campaigns service's messages on the notification channel (for shops that
# deliver themselves); birthday_greeting is no longer requested by loyalty (a campaign greets).
NotificationKind = Literal["win_back_offer", "tier_upgrade", "points_expiring", "birthday_greeting",
                           "follow_up", "campaign_message"]


class NotificationRequestedData(EventData):
    """``crm.notification.requested``: ask the shop's messaging system to tell a customer something.
    The CRM sends no SMS or e-mail itself; consents are the messaging system's to check."""

    customer_id: CustomerId
    kind: NotificationKind
    params: dict[str, Any] = Field(default_factory=dict)
    requested_at: AwareDatetime


class LoyaltyCouponIssuedData(EventData):
    """``crm.loyalty.coupon.issued``: a coupon code was issued. Never the code itself (a secret):
    the customer reads their codes from the loyalty API."""

    coupon_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    pool_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    customer_id: CustomerId | None = None  # None: a generic code anyone may use
    issued_by: ShortText
    issued_at: AwareDatetime
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = None


class ChurnReason(EventData):
    factor: ShortText         # a stable key: bgnbd_no_purchase, overdue, sla_breaches_90d, …
    contribution: float       # log-odds this factor adds against the average customer
    detail: ShortText | None = None  # the same in words, for an agent


class ChurnRiskChangedData(EventData):
    """``crm.churn.risk.changed``: a customer's churn risk level changed, with the reasons."""

    customer_id: CustomerId
    old_level: ChurnLevel | None = None
    new_level: ChurnLevel
    score: Annotated[float, Field(ge=0, le=1)]
    reasons: list[ChurnReason] = Field(default_factory=list, max_length=20)
    model_version: ShortText
    scored_at: AwareDatetime


@dataclass(frozen=True, slots=True)
class EventType:
    type: str
    topic: str
    data_model: type[EventData]

    @property
    def dataschema(self) -> str:
        return dataschema_for(self.type)


def dataschema_for(type_: str) -> str:
    return f"{DATASCHEMA_BASE}{type_}/v1.json"


TOPIC_CUSTOMERS = "commerce.customers"
TOPIC_ORDERS = "commerce.orders"
TOPIC_INTERACTIONS = "commerce.interactions"
TOPIC_FULFILMENT = "commerce.fulfilment"  # fulfilment systems: where a redeemed reward is
TOPIC_PROFILE = "crm.profile"
TOPIC_LOYALTY = "crm.loyalty"
TOPIC_TICKETS = "crm.tickets"
TOPIC_CHURN = "crm.churn"
TOPIC_NOTIFICATIONS = "crm.notifications"
TOPIC_CAMPAIGNS = "crm.campaigns"

COMMERCE_TOPICS = (TOPIC_CUSTOMERS, TOPIC_ORDERS, TOPIC_INTERACTIONS, TOPIC_FULFILMENT)
CRM_TOPICS = (TOPIC_PROFILE, TOPIC_LOYALTY, TOPIC_TICKETS, TOPIC_CHURN, TOPIC_NOTIFICATIONS, TOPIC_CAMPAIGNS)
ALL_TOPICS = COMMERCE_TOPICS + CRM_TOPICS

CATALOGUE: dict[str, EventType] = {
    e.type: e
    for e in (
        EventType("commerce.customer.registered", TOPIC_CUSTOMERS, CustomerData),
        EventType("commerce.customer.updated", TOPIC_CUSTOMERS, CustomerData),
        EventType("commerce.order.placed", TOPIC_ORDERS, OrderData),
        EventType("commerce.order.paid", TOPIC_ORDERS, OrderData),
        EventType("commerce.order.completed", TOPIC_ORDERS, OrderData),
        EventType("commerce.order.cancelled", TOPIC_ORDERS, OrderData),
        EventType("commerce.order.refunded", TOPIC_ORDERS, OrderRefundedData),
        EventType("commerce.interaction.recorded", TOPIC_INTERACTIONS, InteractionData),
        EventType("crm.profile.customer.updated", TOPIC_PROFILE, ProfileCustomerUpdatedData),
        EventType("crm.profile.customer.erased", TOPIC_PROFILE, ProfileCustomerErasedData),
        EventType("crm.profile.customer.merged", TOPIC_PROFILE, ProfileCustomerMergedData),
        EventType("crm.profile.customer.birthday_changed", TOPIC_PROFILE, ProfileBirthdayChangedData),
        EventType("crm.profile.customer.unmerged", TOPIC_PROFILE, ProfileCustomerUnmergedData),
        EventType("crm.loyalty.tier.changed", TOPIC_LOYALTY, LoyaltyTierChangedData),
        EventType("crm.loyalty.points.earned", TOPIC_LOYALTY, LoyaltyPointsData),
        EventType("crm.loyalty.points.redeemed", TOPIC_LOYALTY, LoyaltyPointsData),
        EventType("crm.loyalty.points.reversed", TOPIC_LOYALTY, LoyaltyPointsData),
        EventType("crm.loyalty.points.expired", TOPIC_LOYALTY, LoyaltyPointsData),
        EventType("crm.loyalty.points.adjusted", TOPIC_LOYALTY, LoyaltyPointsData),
        EventType("crm.loyalty.coupon.issued", TOPIC_LOYALTY, LoyaltyCouponIssuedData),
        EventType("crm.notification.requested", TOPIC_NOTIFICATIONS, NotificationRequestedData),
        *(EventType(f"crm.tickets.ticket.{verb}", TOPIC_TICKETS, TicketData)
          for verb in ("opened", "assigned", "resolved", "closed", "reopened")),
        EventType("crm.tickets.ticket.sla_warning", TOPIC_TICKETS, TicketSlaData),
        EventType("crm.tickets.ticket.sla_breached", TOPIC_TICKETS, TicketSlaData),
        EventType("crm.tickets.csat.submitted", TOPIC_TICKETS, CsatSubmittedData),
        EventType("crm.churn.risk.changed", TOPIC_CHURN, ChurnRiskChangedData),
        EventType("crm.profile.segment.entered", TOPIC_PROFILE, ProfileSegmentChangedData),
        EventType("crm.profile.segment.exited", TOPIC_PROFILE, ProfileSegmentChangedData),
        EventType("crm.loyalty.reward.redeemed", TOPIC_LOYALTY, LoyaltyRewardRedeemedData),
        EventType("crm.loyalty.reward.fulfilment_changed", TOPIC_LOYALTY, LoyaltyRewardFulfilmentChangedData),
        EventType("commerce.reward.fulfilment.updated", TOPIC_FULFILMENT, RewardFulfilmentUpdatedData),
        EventType("crm.profile.consent.changed", TOPIC_PROFILE, ProfileConsentChangedData),
        EventType("crm.campaigns.message.status_changed", TOPIC_CAMPAIGNS, CampaignMessageStatusChangedData),
        EventType("crm.campaigns.unsubscribed", TOPIC_CAMPAIGNS, CampaignUnsubscribedData),
        EventType("crm.loyalty.coupon.used", TOPIC_LOYALTY, LoyaltyCouponUseData),
        EventType("crm.loyalty.coupon.released", TOPIC_LOYALTY, LoyaltyCouponUseData),
    )
}


class UnknownEventType(ValueError):
    pass


def data_model_for(type_: str) -> type[EventData]:
    try:
        return CATALOGUE[type_].data_model
    except KeyError:
        raise UnknownEventType(f"unknown event type {type_!r}") from None


def topic_for(type_: str) -> str:
    try:
        return CATALOGUE[type_].topic
    except KeyError:
        raise UnknownEventType(f"unknown event type {type_!r}") from None


class InvalidEvent(ValueError):
    """An event from outside (a file, an HTTP batch) that the catalogue refuses; the message says why."""


def validate_incoming(obj: Any, *, public_only: bool = True) -> tuple[Any, EventData]:
    """Check one structured-mode event from outside against the envelope and the catalogue.

    Returns ``(CloudEvent, data model)``. The subject defaults to the data's customer id (the
    record key) and may not contradict it. With ``public_only`` only ``commerce.*`` types are
    accepted: outsiders may not publish events in the services' name.
    """
    from pydantic import ValidationError

    from crm_shared.events.envelope import EnvelopeError, parse_structured, validation_summary

    if not isinstance(obj, dict):
        raise InvalidEvent("an event must be a JSON object")
    try:
        event = parse_structured(obj)
    except EnvelopeError as exc:
        raise InvalidEvent(str(exc)) from None
    entry = CATALOGUE.get(event.type)
    if entry is None or (public_only and entry.topic not in COMMERCE_TOPICS):
        raise InvalidEvent(f"event type {event.type!r} is not accepted")
    try:
        data = entry.data_model.model_validate(event.data)
    except ValidationError as exc:
        raise InvalidEvent(validation_summary(exc)) from None
    customer_id = getattr(data, "customer_id", None)
    if event.subject is None and customer_id is not None:
        event = event.model_copy(update={"subject": customer_id})
    elif customer_id is not None and event.subject != customer_id:
        raise InvalidEvent("subject must be the customer id of the data")
    return event, data
