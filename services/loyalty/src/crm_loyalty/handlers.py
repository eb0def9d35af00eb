"""Event handlers of the loyalty service: one table, ``HANDLERS``, by event type.

Each handler gets every event of its type from one stage of a batch (per customer in order),
translates them into plain values and calls one use case (``usecases/``) in the consumer's unit
of work; the consumer commits. While a profile merge is in force, events about the duplicate's id
apply to the survivor (``resolving_merged``); later events of a known order apply to the account
that holds it (``by_order_owner``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from crm_shared.bus import Inbound, ServiceHandler, topics_of
from crm_shared.events.catalogue import (
    ChurnRiskChangedData,
    CustomerData,
    OrderData,
    OrderRefundedData,
    ProfileBirthdayChangedData,
    ProfileCustomerErasedData,
    ProfileCustomerMergedData,
    ProfileCustomerUnmergedData,
)
from crm_shared.merges import MERGED, UNMERGED, merges_in, resolving_merged, unmerges_in

from crm_loyalty.domain.earning import Line
from crm_loyalty.usecases import customers, merges, orders
from crm_loyalty.usecases.common import Uow
from crm_loyalty.usecases.orders import OrderFact

CANCELLED = "commerce.order.cancelled"


def _order(inbound: Inbound[OrderData], *, with_lines: bool = False) -> OrderFact:
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
        coupon_codes=tuple(data.coupon_codes) if with_lines else ())


async def on_customer(resources: Any, uow: Uow, events: list[Inbound[CustomerData]]) -> None:
    await customers.customers_seen(uow, resources.store, [
        customers.CustomerFact(e.data.customer_id, e.data.birthday, e.event.traceparent) for e in events])


async def on_birthday_changed(resources: Any, uow: Uow, events: list[Inbound[ProfileBirthdayChangedData]]) -> None:
    await customers.birthdays_changed(uow, [(e.data.customer_id, e.data.month, e.data.day) for e in events])


async def on_customer_erased(resources: Any, uow: Uow, events: list[Inbound[ProfileCustomerErasedData]]) -> None:
    await customers.customers_erased(uow, [(list(e.data.erased_ids), e.data.erased_at) for e in events])


async def on_churn_risk_changed(resources: Any, uow: Uow, events: list[Inbound[ChurnRiskChangedData]]) -> None:
    await customers.churn_risks_changed(uow, resources.store, [
        customers.RiskFact(e.data.customer_id, e.data.old_level, e.data.new_level, e.data.scored_at, e.event.id,
                           e.event.traceparent) for e in events])


async def on_order_paid(resources: Any, uow: Uow, events: list[Inbound[OrderData]]) -> None:
    await orders.orders_paid(uow, resources.store, [_order(e, with_lines=True) for e in events])


async def on_order_completed(resources: Any, uow: Uow, events: list[Inbound[OrderData]]) -> None:
    await orders.orders_completed(uow, resources.store, [_order(e) for e in events])


async def on_order_returned(resources: Any, uow: Uow, events: list[Inbound[OrderData]]) -> None:
    await orders.orders_returned(uow, resources.store, [_order(e) for e in events])


async def on_customer_merged(resources: Any, uow: Uow, events: list[Inbound[ProfileCustomerMergedData]]) -> None:
    await merges.customers_merged(uow, resources.store, merges_in(events))


async def on_customer_unmerged(resources: Any, uow: Uow, events: list[Inbound[ProfileCustomerUnmergedData]]
                               ) -> None:
    await merges.customers_unmerged(uow, resources.store, unmerges_in(events))


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
    "commerce.customer.registered": on_customer,
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
})
TOPICS = topics_of(HANDLERS)
