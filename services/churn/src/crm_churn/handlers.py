"""Event handlers of the churn service, in one table by event type: each translates a batch into a
use case (``usecases.events`` records the history and rescores, ``usecases.merges`` follows merges
and erasure). Events about a merged duplicate apply to its survivor. Handlers never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crm_shared.bus import Inbound, ServiceHandler, topics_of
from crm_shared.events.catalogue import (
    CsatSubmittedData,
    InteractionData,
    OrderData,
    OrderRefundedData,
    ProfileCustomerErasedData,
    ProfileCustomerMergedData,
    ProfileCustomerUnmergedData,
    TicketData,
    TicketSlaData,
)
from crm_shared.merges import MERGED, UNMERGED, merges_in, resolving_merged, unmerges_in
from crm_shared.uow import UnitOfWork

from crm_churn.usecases import events as record
from crm_churn.usecases import merges

if TYPE_CHECKING:
    from crm_churn.app import ChurnResources
    from crm_churn.repository import ChurnRepository

    Uow = UnitOfWork[ChurnRepository]


def _trace(inbound: Inbound[Any]) -> str | None:
    return inbound.event.traceparent


async def on_order_paid(resources: ChurnResources, uow: Uow, events: list[Inbound[OrderData]]) -> None:
    await record.orders_paid(uow, resources.scorer, [
        record.PaidOrder(e.data.order_id, e.data.customer_id, e.data.occurred_at, e.data.currency,
                         e.data.total_amount, _trace(e)) for e in events])


async def on_order_cancelled(resources: ChurnResources, uow: Uow, events: list[Inbound[OrderData]]) -> None:
    await record.orders_cancelled(uow, resources.scorer, [
        record.OrderChange(e.data.order_id, e.data.customer_id, e.data.occurred_at, traceparent=_trace(e))
        for e in events])


async def on_order_refunded(resources: ChurnResources, uow: Uow, events: list[Inbound[OrderRefundedData]]) -> None:
    await record.orders_refunded(uow, resources.scorer, [
        record.OrderChange(e.data.order_id, e.data.customer_id, e.data.occurred_at, e.data.refund_amount, _trace(e))
        for e in events])


async def on_interaction(resources: ChurnResources, uow: Uow, events: list[Inbound[InteractionData]]) -> None:
    await record.interactions(uow, resources.scorer, [
        record.Interaction(e.data.customer_id, e.data.occurred_at, _trace(e)) for e in events])


def on_ticket(change: str) -> Callable[..., Any]:
    async def handle(resources: ChurnResources, uow: Uow, events: list[Inbound[TicketData | TicketSlaData]]) -> None:
        await record.tickets_changed(uow, resources.scorer, change, [
            record.TicketChange(e.data.ticket_id, e.data.customer_id, getattr(e.data, "kind", "unknown"),
                                e.data.occurred_at, _trace(e)) for e in events])
    return handle


async def on_csat(resources: ChurnResources, uow: Uow, events: list[Inbound[CsatSubmittedData]]) -> None:
    await record.ratings(uow, resources.scorer, [
        record.Rating(e.data.ticket_id, e.data.customer_id, e.data.score, e.data.submitted_at, _trace(e))
        for e in events])


async def on_customer_erased(resources: ChurnResources, uow: Uow,
                             events: list[Inbound[ProfileCustomerErasedData]]) -> None:
    erased_at: dict[str, Any] = {}
    for e in events:
        for customer_id in e.data.erased_ids:
            erased_at.setdefault(customer_id, e.data.erased_at)
    await merges.erase(uow, erased_at)


async def on_customer_merged(resources: ChurnResources, uow: Uow,
                             events: list[Inbound[ProfileCustomerMergedData]]) -> None:
    await merges.merge(uow, resources.scorer, [
        *merges_in(events)],
        traceparent=_trace(events[-1]))


async def on_customer_unmerged(resources: ChurnResources, uow: Uow,
                               events: list[Inbound[ProfileCustomerUnmergedData]]) -> None:
    await merges.unmerge(uow, resources.scorer, [
        *unmerges_in(events)],
        traceparent=_trace(events[-1]))


HANDLERS: dict[str, ServiceHandler] = resolving_merged({
    "commerce.order.paid": on_order_paid,
    "commerce.order.cancelled": on_order_cancelled,
    "commerce.order.refunded": on_order_refunded,
    "commerce.interaction.recorded": on_interaction,
    "crm.tickets.ticket.opened": on_ticket("opened"),
    "crm.tickets.ticket.resolved": on_ticket("resolved"),
    "crm.tickets.ticket.closed": on_ticket("resolved"),
    "crm.tickets.ticket.reopened": on_ticket("reopened"),
    "crm.tickets.ticket.sla_breached": on_ticket("breached"),
    "crm.tickets.csat.submitted": on_csat,
    "crm.profile.customer.erased": on_customer_erased,
    MERGED: on_customer_merged,
    UNMERGED: on_customer_unmerged,
})
TOPICS = topics_of(HANDLERS)
