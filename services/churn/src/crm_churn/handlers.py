"""Event handlers of the churn service, registered in one table by event type.

Each handler records the history the features need (orders, daily activity, tickets, ratings)
and then rescores the customers it touched in the same transaction, so a score, its level change
and the ``crm.churn.risk.changed`` event are committed with the event that caused them and never
twice. Handlers never commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC
from typing import Any

from crm_shared.bus import HandlerTable, Inbound
from crm_shared.events.catalogue import (
    TOPIC_INTERACTIONS,
    TOPIC_ORDERS,
    TOPIC_PROFILE,
    TOPIC_TICKETS,
    CsatSubmittedData,
    InteractionData,
    OrderData,
    OrderRefundedData,
    ProfileCustomerErasedData,
    TicketData,
    TicketSlaData,
)
from crm_shared.merges import resolving_merged
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_churn.erasure import erase_customers, skipping_erased
from crm_churn.merges import merge_handlers
from crm_churn.scoring import Scorer

TOPICS = (TOPIC_ORDERS, TOPIC_INTERACTIONS, TOPIC_TICKETS, TOPIC_PROFILE)

_ORDER_PAID = text("""
    INSERT INTO churn_orders (order_id, customer_id, paid_at, currency, total_amount)
    SELECT * FROM unnest(CAST(:order_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:at AS timestamptz[]),
                         CAST(:currencies AS text[]), CAST(:totals AS numeric[]))
    ON CONFLICT (order_id) DO NOTHING
""")
_ORDER_CANCELLED = text("""
    UPDATE churn_orders o SET cancelled_at = COALESCE(o.cancelled_at, u.at)
    FROM unnest(CAST(:order_ids AS text[]), CAST(:at AS timestamptz[])) AS u(order_id, at)
    WHERE o.order_id = u.order_id
""")
_ORDER_REFUNDED = text("""
    UPDATE churn_orders o SET refunded_amount = LEAST(o.total_amount, o.refunded_amount + u.amount)
    FROM unnest(CAST(:order_ids AS text[]), CAST(:amounts AS numeric[])) AS u(order_id, amount)
    WHERE o.order_id = u.order_id
""")
_ACTIVITY = text("""
    INSERT INTO churn_activity AS a (customer_id, day, events)
    SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:days AS date[]), CAST(:counts AS integer[]))
    ON CONFLICT (customer_id, day) DO UPDATE SET events = a.events + excluded.events
""")
# A ticket seen first through a later event (the churn service started after it was opened) is
# recorded from that event: its kind if the event has one, opened at the event's time.
_TICKET_UPSERT = """
    INSERT INTO churn_tickets AS t (ticket_id, customer_id, kind, opened_at, {column})
    SELECT u.ticket_id, u.customer_id, u.kind, u.at, {value}
    FROM unnest(CAST(:ticket_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:kinds AS text[]),
                CAST(:at AS timestamptz[])) AS u(ticket_id, customer_id, kind, at)
    ON CONFLICT (ticket_id) DO UPDATE SET {column} = {update}
"""
_TICKET_OPENED = text("""
    INSERT INTO churn_tickets (ticket_id, customer_id, kind, opened_at)
    SELECT * FROM unnest(CAST(:ticket_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:kinds AS text[]),
                         CAST(:at AS timestamptz[]))
    ON CONFLICT (ticket_id) DO NOTHING
""")
_TICKET_RESOLVED = text(_TICKET_UPSERT.format(column="resolved_at", value="u.at",
                                              update="COALESCE(t.resolved_at, excluded.resolved_at)"))
_TICKET_REOPENED = text(_TICKET_UPSERT.format(column="resolved_at", value="CAST(NULL AS timestamptz)", update="NULL"))
_TICKET_BREACHED = text(_TICKET_UPSERT.format(column="breached_at", value="u.at",
                                              update="COALESCE(t.breached_at, excluded.breached_at)"))
_CSAT = text("""
    INSERT INTO churn_csat (ticket_id, customer_id, score, submitted_at)
    SELECT * FROM unnest(CAST(:ticket_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:scores AS smallint[]),
                         CAST(:at AS timestamptz[]))
    ON CONFLICT (ticket_id) DO NOTHING
""")


def _first_per(events: list[Inbound[Any]], key: Callable[[Any], str]) -> list[Inbound[Any]]:
    """One event per key, the first in partition order (a multi-row upsert may touch a row once)."""
    seen: dict[str, Inbound[Any]] = {}
    for inbound in events:
        seen.setdefault(key(inbound.data), inbound)
    return list(seen.values())


def _ticket_rows(events: list[Inbound[Any]]) -> dict[str, list[Any]]:
    picked = _first_per(events, lambda d: d.ticket_id)
    return {"ticket_ids": [e.data.ticket_id for e in picked], "customer_ids": [e.data.customer_id for e in picked],
            "kinds": [getattr(e.data, "kind", "unknown") for e in picked],
            "at": [e.data.occurred_at for e in picked]}


def build_handlers(scorer: Scorer) -> HandlerTable:
    async def rescore(tx: AsyncConnection, events: list[Inbound[Any]], customer_ids: list[str]) -> None:
        await scorer.rescore(tx, customer_ids, trigger="event", traceparent=events[-1].event.traceparent)

    async def on_order_paid(tx: AsyncConnection, events: list[Inbound[OrderData]]) -> None:
        picked = _first_per(events, lambda d: d.order_id)
        await tx.execute(_ORDER_PAID, {
            "order_ids": [e.data.order_id for e in picked], "customer_ids": [e.data.customer_id for e in picked],
            "at": [e.data.occurred_at for e in picked], "currencies": [e.data.currency for e in picked],
            "totals": [e.data.total_amount for e in picked]})
        await rescore(tx, events, [e.data.customer_id for e in events])

    async def on_order_cancelled(tx: AsyncConnection, events: list[Inbound[OrderData]]) -> None:
        picked = _first_per(events, lambda d: d.order_id)
        await tx.execute(_ORDER_CANCELLED, {"order_ids": [e.data.order_id for e in picked],
                                            "at": [e.data.occurred_at for e in picked]})
        await rescore(tx, events, [e.data.customer_id for e in events])

    async def on_order_refunded(tx: AsyncConnection, events: list[Inbound[OrderRefundedData]]) -> None:
        # Several refunds of one order in a batch add up; one statement may update a row once.
        amounts: Counter[str] = Counter()
        for e in events:
            amounts[e.data.order_id] += e.data.refund_amount
        await tx.execute(_ORDER_REFUNDED, {"order_ids": list(amounts), "amounts": list(amounts.values())})
        await rescore(tx, events, [e.data.customer_id for e in events])

    async def on_interaction(tx: AsyncConnection, events: list[Inbound[InteractionData]]) -> None:
        per_day: Counter[tuple[str, Any]] = Counter(
            (e.data.customer_id, e.data.occurred_at.astimezone(UTC).date()) for e in events)
        await tx.execute(_ACTIVITY, {"customer_ids": [k[0] for k in per_day], "days": [k[1] for k in per_day],
                                     "counts": list(per_day.values())})
        await rescore(tx, events, [e.data.customer_id for e in events])

    def on_ticket(statement) -> Callable:
        async def handle(tx: AsyncConnection, events: list[Inbound[TicketData | TicketSlaData]]) -> None:
            await tx.execute(statement, _ticket_rows(events))
            await rescore(tx, events, [e.data.customer_id for e in events])
        return handle

    async def on_csat(tx: AsyncConnection, events: list[Inbound[CsatSubmittedData]]) -> None:
        picked = _first_per(events, lambda d: d.ticket_id)
        await tx.execute(_CSAT, {
            "ticket_ids": [e.data.ticket_id for e in picked], "customer_ids": [e.data.customer_id for e in picked],
            "scores": [e.data.score for e in picked], "at": [e.data.submitted_at for e in picked]})
        await rescore(tx, events, [e.data.customer_id for e in events])

    async def on_customer_erased(tx: AsyncConnection, events: list[Inbound[ProfileCustomerErasedData]]) -> None:
        """Erasure removes the customer's history and score here, for good: see erasure.py."""
        await erase_customers(tx, events)

    table = {
        "commerce.order.paid": on_order_paid,
        "commerce.order.cancelled": on_order_cancelled,
        "commerce.order.refunded": on_order_refunded,
        "commerce.interaction.recorded": on_interaction,
        "crm.tickets.ticket.opened": on_ticket(_TICKET_OPENED),
        "crm.tickets.ticket.resolved": on_ticket(_TICKET_RESOLVED),
        "crm.tickets.ticket.closed": on_ticket(_TICKET_RESOLVED),
        "crm.tickets.ticket.reopened": on_ticket(_TICKET_REOPENED),
        "crm.tickets.ticket.sla_breached": on_ticket(_TICKET_BREACHED),
        "crm.tickets.csat.submitted": on_csat,
    }
    # Events about a merged duplicate apply to its survivor; none about an erased customer apply.
    return resolving_merged({**{event_type: skipping_erased(handler) for event_type, handler in table.items()},
                             "crm.profile.customer.erased": on_customer_erased,
                             **merge_handlers(scorer)})
