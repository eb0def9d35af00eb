"""Event handlers of the profile service: one table by event type, translating events into use cases.

Each handler gets every event of its type from one stage of a batch, as ``(resources, uow,
events)`` (``resources``: what app.py's ``resources()`` opened: the PII vault, the phone region,
the RFM currency), and calls one use case in the consumer's unit of work. Handlers never commit.

Every handler sees merged ids as their survivors (events about a profile merged into another apply
to the surviving profile), and events about erased customers without what may be personal
(domain/erasure.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crm_shared.bus import Inbound, ServiceHandler, topics_of
from crm_shared.events.campaigns import CampaignUnsubscribedData
from crm_shared.events.catalogue import (
    ChurnRiskChangedData,
    CsatSubmittedData,
    CustomerData,
    InteractionData,
    LoyaltyPointsData,
    LoyaltyTierChangedData,
    OrderData,
    OrderRefundedData,
    TicketData,
    TicketSlaData,
)
from crm_shared.uow import UnitOfWork

from crm_profile.domain.erasure import SCRUB
from crm_profile.domain.identity import normalise_email, normalise_phone
from crm_profile.domain.records import IdentityChange, OrderFact, RefundRequest, TimelineEntry
from crm_profile.repository import ProfileRepository
from crm_profile.usecases import activity, identity

Uow = UnitOfWork[ProfileRepository]
CANCELLED = "commerce.order.cancelled"
REGISTERED = "commerce.customer.registered"


def _traceparents(events: list[Inbound[Any]]) -> dict[str, str | None]:
    return {inbound.data.customer_id: inbound.event.traceparent for inbound in events}


def identity_change(inbound: Inbound[CustomerData], phone_region: str) -> IdentityChange:
    data, event = inbound.data, inbound.event
    consents = {}
    if data.consents is not None:
        consents = {channel: granted for channel, granted in
                    (("email", data.consents.email), ("sms", data.consents.sms)) if granted is not None}
    return IdentityChange(
        customer_id=data.customer_id, changed_at=event.time or data.registered_at or datetime.now(UTC),
        source=event.source, email=normalise_email(data.email), phone=normalise_phone(data.phone, phone_region),
        name=data.name, birthday=data.birthday, gender=data.gender, city=data.city,
        registered_at=data.registered_at, consents=consents, locale=data.locale, time_zone=data.time_zone,
        consent_reason="registration" if event.type == REGISTERED else "update")


def _order(inbound: Inbound[OrderData]) -> OrderFact:
    data = inbound.data
    return OrderFact(data.order_id, data.customer_id, data.currency, data.total_amount, data.occurred_at,
                     data.channel, [item.model_dump(mode="json") for item in data.items])


def _order_entry(inbound: Inbound[OrderData], verb: str) -> TimelineEntry:
    data = inbound.data
    details = {"order_id": data.order_id, "currency": data.currency, "total_amount": str(data.total_amount)}
    if isinstance(data, OrderRefundedData):
        details["refund_amount"] = str(data.refund_amount)
    return TimelineEntry(data.customer_id, data.occurred_at, f"order.{verb}", data.channel, details, inbound.event.id)


async def on_customer_registered_or_updated(resources, uow: Uow, events: list[Inbound[CustomerData]]) -> None:
    await identity.record_identities(uow, resources.vault,
                                     [identity_change(e, resources.phone_default_region) for e in events],
                                     currency=resources.rfm_currency, traceparents=_traceparents(events))


async def on_unsubscribed(resources, uow: Uow, events: list[Inbound[CampaignUnsubscribedData]]) -> None:
    """A customer followed a campaign message's unsubscribe link: that channel's consent is withdrawn."""
    await identity.withdraw_consents(uow, resources.vault,
                                     [(e.data.customer_id, e.data.channel, e.data.at) for e in events],
                                     traceparents=_traceparents(events))


async def on_order_placed(resources, uow: Uow, events: list[Inbound[OrderData]]) -> None:
    await activity.orders_placed(uow, [_order(e) for e in events], [_order_entry(e, "placed") for e in events])


async def on_order_paid(resources, uow: Uow, events: list[Inbound[OrderData]]) -> None:
    await activity.orders_paid(uow, [_order(e) for e in events], [_order_entry(e, "paid") for e in events],
                               currency=resources.rfm_currency, traceparents=_traceparents(events))


async def on_order_completed(resources, uow: Uow, events: list[Inbound[OrderData]]) -> None:
    await activity.orders_completed(uow, [_order(e) for e in events], [_order_entry(e, "completed") for e in events])


async def on_order_refunded_or_cancelled(resources, uow: Uow, events: list[Inbound[OrderData]]) -> None:
    cancelled = [e.event.type == CANCELLED for e in events]
    refunds = [RefundRequest(e.data.order_id, e.data.total_amount if gone else e.data.refund_amount,
                             e.data.occurred_at, gone) for e, gone in zip(events, cancelled, strict=True)]
    entries = [_order_entry(e, "cancelled" if e.event.type == CANCELLED else "refunded") for e in events]
    await activity.orders_refunded(uow, refunds, entries, currency=resources.rfm_currency,
                                   traceparents=_traceparents(events))


async def on_interaction_recorded(resources, uow: Uow, events: list[Inbound[InteractionData]]) -> None:
    await activity.interactions_recorded(uow, [
        TimelineEntry(e.data.customer_id, e.data.occurred_at, f"interaction.{e.data.kind}", e.data.channel,
                      e.data.attributes, e.event.id) for e in events], currency=resources.rfm_currency)


async def on_tier_changed(resources, uow: Uow, events: list[Inbound[LoyaltyTierChangedData]]) -> None:
    latest = {e.data.customer_id: e.data.new_tier for e in events}  # in partition order: last wins
    await activity.levels_changed(uow, "tier", latest, [
        TimelineEntry(e.data.customer_id, e.data.changed_at, "loyalty.tier_changed", None,
                      {"old_tier": e.data.old_tier, "new_tier": e.data.new_tier}, e.event.id) for e in events],
        currency=resources.rfm_currency)


async def on_churn_risk_changed(resources, uow: Uow, events: list[Inbound[ChurnRiskChangedData]]) -> None:
    latest = {e.data.customer_id: e.data.new_level for e in events}
    await activity.levels_changed(uow, "churn_level", latest, [
        TimelineEntry(e.data.customer_id, e.data.scored_at, "churn.risk_changed", None,
                      {"old_level": e.data.old_level, "new_level": e.data.new_level, "score": e.data.score,
                       "reasons": [r.model_dump() for r in e.data.reasons[:3]]}, e.event.id) for e in events],
        currency=resources.rfm_currency)


async def on_points_moved(resources, uow: Uow, events: list[Inbound[LoyaltyPointsData]]) -> None:
    """Points earned, redeemed, reversed, expired or adjusted: on the agent's timeline."""
    await activity.add_to_timeline(uow, [
        TimelineEntry(e.data.customer_id, e.data.occurred_at, e.event.type.removeprefix("crm."), None,
                      {key: value for key, value in (("kind", e.data.kind), ("points", e.data.points),
                                                     ("available", e.data.available), ("pending", e.data.pending),
                                                     ("reason", e.data.reason), ("order_id", e.data.order_id),
                                                     ("redemption_id", e.data.redemption_id)) if value is not None},
                      e.event.id) for e in events])


async def on_ticket_event(resources, uow: Uow,
                          events: list[Inbound[TicketData | TicketSlaData | CsatSubmittedData]]) -> None:
    """Tickets opened, assigned, resolved, closed or reopened, SLA warnings and breaches, ratings:
    on the agent's timeline (ids, categories and states; the ticket's text stays in its service)."""
    entries = []
    for e in events:
        data = e.data.model_dump(mode="json", exclude_none=True)
        data.pop("customer_id", None)
        at = getattr(e.data, "occurred_at", None) or getattr(e.data, "submitted_at", None)
        entries.append(TimelineEntry(e.data.customer_id, at, e.event.type.removeprefix("crm."), None, data,
                                     e.event.id))
    await activity.add_to_timeline(uow, entries)


def _scrubbing_erased(event_type: str, handler: ServiceHandler) -> ServiceHandler:
    """Events about erased customers reach the handler without their personal data (event types
    that carry none are passed through unwrapped)."""
    scrub = SCRUB.get(event_type)
    if scrub is None:
        return handler

    async def handle(resources, uow: Uow, events: list[Inbound[Any]]) -> None:
        erased = await uow.repo.erased_among(_customers(events))
        if erased:
            events = [Inbound(e.event, e.data.model_copy(update=scrub), e.record)
                      if e.data.customer_id in erased else e for e in events]
        await handler(resources, uow, events)
    return handle


def _resolving_merged(handler: ServiceHandler) -> ServiceHandler:
    """Events about a profile merged into another apply to the surviving profile."""

    async def handle(resources, uow: Uow, events: list[Inbound[Any]]) -> None:
        survivors = await uow.repo.survivors_of(_customers(events))
        if survivors:
            events = [Inbound(e.event, e.data.model_copy(update={"customer_id": survivors[e.data.customer_id]}),
                              e.record) if e.data.customer_id in survivors else e for e in events]
        await handler(resources, uow, events)
    return handle


def _customers(events: list[Inbound[Any]]) -> list[str]:
    return sorted({inbound.data.customer_id for inbound in events})


_TABLE: dict[str, ServiceHandler] = {
    "commerce.customer.registered": on_customer_registered_or_updated,
    "commerce.customer.updated": on_customer_registered_or_updated,
    "commerce.order.placed": on_order_placed,
    "commerce.order.paid": on_order_paid,
    "commerce.order.completed": on_order_completed,
    "commerce.order.cancelled": on_order_refunded_or_cancelled,
    "commerce.order.refunded": on_order_refunded_or_cancelled,
    "commerce.interaction.recorded": on_interaction_recorded,
    "crm.loyalty.tier.changed": on_tier_changed,
    "crm.churn.risk.changed": on_churn_risk_changed,
    "crm.campaigns.unsubscribed": on_unsubscribed,
    **{f"crm.loyalty.points.{verb}": on_points_moved
       for verb in ("earned", "redeemed", "reversed", "expired", "adjusted")},
    **{f"crm.tickets.{name}": on_ticket_event
       for name in ("ticket.opened", "ticket.assigned", "ticket.resolved", "ticket.closed", "ticket.reopened",
                    "ticket.sla_warning", "ticket.sla_breached", "csat.submitted")},
}

# The profile follows merges through its own customers.merged_into (it is where merges are made),
# not through crm_shared.merges' customer_merges table of the other services.
HANDLERS: dict[str, ServiceHandler] = {event_type: _resolving_merged(_scrubbing_erased(event_type, handler))
                                       for event_type, handler in _TABLE.items()}
TOPICS = topics_of(HANDLERS)
