"""Event handlers of the loyalty service: one table, ``HANDLERS``, by event type.

Each handler gets every event of its type from one stage of a batch (per customer in order),
translates them into plain values and calls one use case (``usecases/``) in the consumer's unit
of work; the consumer commits. While a profile merge is in force, events about the duplicate's id
apply to the survivor (``resolving_merged``); later events of a known order apply to the account
that holds it (``by_order_owner``).
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Any

from crm_shared.bus import Inbound, ServiceHandler, topics_of
from crm_shared.events.catalogue import (
    ChurnRiskChangedData,
    CustomerData,
    InteractionData,
    OrderData,
    OrderRefundedData,
    ProfileBirthdayChangedData,
    ProfileCustomerErasedData,
    ProfileCustomerMergedData,
    ProfileCustomerUnmergedData,
    ProfileSegmentChangedData,
    RewardFulfilmentUpdatedData,
)
from crm_shared.merges import MERGED, UNMERGED, merges_in, resolving_merged, unmerges_in

from crm_loyalty.domain.earning import Line
from crm_loyalty.domain.rules import Fingerprints
from crm_loyalty.usecases import customers, merges, orders, rewards, rules
from crm_loyalty.usecases.common import Uow
from crm_loyalty.usecases.orders import OrderFact

CANCELLED = "commerce.order.cancelled"
REGISTERED = "commerce.customer.registered"
INTERACTION = "commerce.interaction.recorded"
SEGMENT_ENTERED = "crm.profile.segment.entered"


@lru_cache(maxsize=4)
def _fingerprinter(key: str) -> Fingerprints:
    return Fingerprints(key.encode())


def _fingerprints(resources: Any) -> Fingerprints:
    return _fingerprinter(resources.settings.fingerprint_key.get_secret_value())


def _order(inbound: Inbound[OrderData], *, with_lines: bool = False, prints: Fingerprints | None = None
           ) -> OrderFact:
    data = inbound.data
    refund = data if isinstance(data, OrderRefundedData) else None
    return OrderFact(
        order_id=data.order_id, customer_id=data.customer_id, currency=data.currency,
        total_amount=data.total_amount, occurred_at=data.occurred_at, event_id=inbound.event.id,
        traceparent=inbound.event.traceparent,
        lines=tuple(Line(i.sku, i.category, i.quantity, i.unit_price * i.quantity) for i in data.items)
        if with_lines else (),
        cancelled=inbound.event.type == CANCELLED,
        refund_amount=refund.refund_amount if refund is not None else Decimal(0),
        refunded_items=tuple((i.sku, i.quantity) for i in refund.refunded_items or ()) if refund is not None else (),
        payment_digest=prints.digest("payment", data.payment_fingerprint) if prints is not None else None,
        coupon_codes=tuple(data.coupon_codes) if with_lines else ())


async def on_customer(resources: Any, uow: Uow, events: list[Inbound[CustomerData]]) -> None:
    prints = _fingerprints(resources)
    facts = []
    for e in events:
        registered = e.event.type == REGISTERED
        facts.append(customers.CustomerFact(
            e.data.customer_id, e.data.birthday, e.event.traceparent, registered=registered,
            at=e.data.registered_at or e.event.time, event_id=e.event.id,
            referred_by=e.data.referred_by if registered else None,
            fingerprints=prints.of(email=e.data.email, phone=e.data.phone)))
    await customers.customers_seen(uow, resources.store, facts)


async def on_birthday_changed(resources: Any, uow: Uow, events: list[Inbound[ProfileBirthdayChangedData]]) -> None:
    await customers.birthdays_changed(uow, [(e.data.customer_id, e.data.month, e.data.day) for e in events])


async def on_customer_erased(resources: Any, uow: Uow, events: list[Inbound[ProfileCustomerErasedData]]) -> None:
    await customers.customers_erased(uow, [(list(e.data.erased_ids), e.data.erased_at) for e in events])
    # The reward catalogue's own personal data (segments, fulfilment notes), in the same transaction.
    await rewards.rewards_data_erased(uow, [i for e in events for i in e.data.erased_ids])


async def on_churn_risk_changed(resources: Any, uow: Uow, events: list[Inbound[ChurnRiskChangedData]]) -> None:
    await customers.churn_risks_changed(uow, resources.store, [
        customers.RiskFact(e.data.customer_id, e.data.old_level, e.data.new_level, e.data.scored_at, e.event.id,
                           e.event.traceparent) for e in events])


async def on_order_paid(resources: Any, uow: Uow, events: list[Inbound[OrderData]]) -> None:
    prints = _fingerprints(resources)
    await orders.orders_paid(uow, resources.store, [_order(e, with_lines=True, prints=prints) for e in events])


async def on_review(resources: Any, uow: Uow, events: list[Inbound[InteractionData]]) -> None:
    await rules.reviews_recorded(uow, resources.store, [
        rules.ReviewFact(e.data.customer_id, e.data.occurred_at, e.data.attributes, e.event.id, e.event.traceparent)
        for e in events])


def reviews_only(handler: ServiceHandler) -> ServiceHandler:
    """Interactions are many and loyalty wants only reviews: the rest are dropped here, before the
    merge lookup or any query (they still pass the consumer's inbox, like every event)."""

    async def handle(resources: Any, uow: Uow, events: list[Inbound[InteractionData]]) -> None:
        reviews = [e for e in events if e.data.kind == "review"]
        if reviews:
            await handler(resources, uow, reviews)
    return handle


async def on_order_completed(resources: Any, uow: Uow, events: list[Inbound[OrderData]]) -> None:
    await orders.orders_completed(uow, resources.store, [_order(e) for e in events])


async def on_order_returned(resources: Any, uow: Uow, events: list[Inbound[OrderData]]) -> None:
    await orders.orders_returned(uow, resources.store, [_order(e) for e in events])


async def on_customer_merged(resources: Any, uow: Uow, events: list[Inbound[ProfileCustomerMergedData]]) -> None:
    await merges.customers_merged(uow, resources.store, merges_in(events))


async def on_customer_unmerged(resources: Any, uow: Uow, events: list[Inbound[ProfileCustomerUnmergedData]]
                               ) -> None:
    await merges.customers_unmerged(uow, resources.store, unmerges_in(events))


async def on_segment_changed(resources: Any, uow: Uow, events: list[Inbound[ProfileSegmentChangedData]]) -> None:
    await rewards.segments_changed(uow, [
        rewards.SegmentChange(e.data.customer_id, e.data.segment_id, e.event.type == SEGMENT_ENTERED, e.data.at)
        for e in events])


async def on_reward_fulfilment(resources: Any, uow: Uow, events: list[Inbound[RewardFulfilmentUpdatedData]]) -> None:
    await rewards.fulfilments_reported(uow, resources.store, [
        rewards.FulfilmentChange(redemption_id=e.data.redemption_id, status=e.data.status,
                                 actor=f"event:{e.event.source}"[:200], note=e.data.note, at=e.data.occurred_at,
                                 event_id=e.event.id, traceparent=e.event.traceparent) for e in events])


def by_order_owner(handler: ServiceHandler) -> ServiceHandler:
    """Events of a known order go to the account that holds it (``usecases.orders.order_owners``)."""

    async def handle(resources: Any, uow: Uow, events: list[Inbound[Any]]) -> None:
        owners = await orders.order_owners(uow, [(e.data.order_id, e.data.customer_id) for e in events])
        if owners:
            events = [Inbound(e.event, e.data.model_copy(update={"customer_id": owners[e.data.order_id]}), e.record)
                      if e.data.order_id in owners else e for e in events]
        await handler(resources, uow, events)
    return handle


HANDLERS: dict[str, ServiceHandler] = resolving_merged({
    REGISTERED: on_customer,
    "commerce.customer.updated": on_customer,
    "commerce.order.paid": on_order_paid,
    "commerce.order.completed": by_order_owner(on_order_completed),
    CANCELLED: by_order_owner(on_order_returned),
    "commerce.order.refunded": by_order_owner(on_order_returned),
    "crm.profile.customer.erased": on_customer_erased,
    "crm.profile.customer.birthday_changed": on_birthday_changed,
    "crm.churn.risk.changed": on_churn_risk_changed,
    MERGED: on_customer_merged,
    UNMERGED: on_customer_unmerged,
    INTERACTION: on_review,
    SEGMENT_ENTERED: on_segment_changed,
    "crm.profile.segment.exited": on_segment_changed,
    "commerce.reward.fulfilment.updated": on_reward_fulfilment,
})
HANDLERS[INTERACTION] = reviews_only(HANDLERS[INTERACTION])  # the kind filter first, then the merge lookup
TOPICS = topics_of(HANDLERS)
