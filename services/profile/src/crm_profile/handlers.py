"""Event handlers of the profile service, registered in one table by event type.

Each handler gets every event of its type from one stage of a batch and applies them with
set-based SQL in the consumer's transaction (one transaction per event is far
too slow). Handlers never commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from crm_shared.bus import HandlerTable, Inbound
from crm_shared.events.catalogue import (
    TOPIC_CHURN,
    TOPIC_CUSTOMERS,
    TOPIC_INTERACTIONS,
    TOPIC_LOYALTY,
    TOPIC_ORDERS,
    TOPIC_TICKETS,
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
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.domain.identity import normalise_email, normalise_phone
from crm_profile.domain.pii import PiiVault
from crm_profile.erasure import scrubbing_erased
from crm_profile.repository import IdentityChange, emit_customer_updated, survivors_of, write_identities
from crm_profile.repository.segments import SegmentRepository
from crm_profile.usecases import segments as segment_usecases


# A bridge from this module's connections to the segment use case (i18-pii), until the handlers
# take units of work and call usecases.segments.refresh_segments(uow, …) themselves.
async def refresh_segments(tx, currency, customer_ids=None, segment_id=None) -> int:
    return await segment_usecases.refresh_segments(UnitOfWork(tx, SegmentRepository), currency, customer_ids,
                                                   segment_id)


TOPICS = (TOPIC_CUSTOMERS, TOPIC_ORDERS, TOPIC_INTERACTIONS, TOPIC_LOYALTY, TOPIC_CHURN, TOPIC_TICKETS)

# Paid orders: the orders table makes each order count once whatever the event id (a placed
# order becomes paid once); the customer's statistics grow by what was really new, and the
# categories bought come from the items. One statement for the whole run.
_APPLY_PAID_ORDERS = text("""
    WITH incoming AS (
        SELECT DISTINCT ON (order_id) *
        FROM unnest(CAST(:order_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:currencies AS text[]),
                    CAST(:amounts AS numeric[]), CAST(:paid_ats AS timestamptz[]), CAST(:channels AS text[]),
                    CAST(:items AS text[]))
             AS t(order_id, customer_id, currency, total_amount, paid_at, channel, items)
        ORDER BY order_id
    ), newly_paid AS (
        INSERT INTO orders AS o (order_id, customer_id, currency, total_amount, paid_at, status, channel, items)
        SELECT order_id, customer_id, currency, total_amount, paid_at, 'paid', channel, CAST(items AS jsonb)
        FROM incoming
        ON CONFLICT (order_id) DO UPDATE SET
            paid_at = excluded.paid_at, status = 'paid', total_amount = excluded.total_amount,
            currency = excluded.currency, channel = COALESCE(excluded.channel, o.channel),
            items = CASE WHEN excluded.items = '[]' THEN o.items ELSE excluded.items END
        WHERE o.paid_at IS NULL AND o.status = 'placed'
        RETURNING customer_id, currency, total_amount, paid_at, items
    ), spend AS (
        INSERT INTO customer_spend AS s (customer_id, currency, amount, order_count)
        SELECT customer_id, currency, sum(total_amount), count(*) FROM newly_paid GROUP BY customer_id, currency
        ON CONFLICT (customer_id, currency) DO UPDATE SET
            amount = s.amount + excluded.amount, order_count = s.order_count + excluded.order_count
    ), categories AS (
        INSERT INTO customer_categories AS cc (customer_id, category, quantity, first_bought_at, last_bought_at)
        SELECT n.customer_id, i.category, sum(i.quantity), min(n.paid_at), max(n.paid_at)
        FROM newly_paid n CROSS JOIN LATERAL jsonb_to_recordset(n.items) AS i(category text, quantity integer)
        WHERE i.category IS NOT NULL
        GROUP BY n.customer_id, i.category
        ON CONFLICT (customer_id, category) DO UPDATE SET
            quantity = cc.quantity + excluded.quantity,
            first_bought_at = LEAST(cc.first_bought_at, excluded.first_bought_at),
            last_bought_at = GREATEST(cc.last_bought_at, excluded.last_bought_at)
    )
    INSERT INTO customers AS c (customer_id, order_count, first_order_at, last_order_at)
    SELECT customer_id, count(*), min(paid_at), max(paid_at) FROM newly_paid GROUP BY customer_id
    ON CONFLICT (customer_id) DO UPDATE SET
        order_count    = c.order_count + excluded.order_count,
        first_order_at = LEAST(c.first_order_at, excluded.first_order_at),
        last_order_at  = GREATEST(c.last_order_at, excluded.last_order_at),
        updated_at     = now()
    RETURNING customer_id, order_count, first_order_at, last_order_at
""")

_RECORD_PLACED = text("""
    INSERT INTO orders AS o (order_id, customer_id, currency, total_amount, status, placed_at, channel, items)
    SELECT order_id, customer_id, currency, total_amount, 'placed', placed_at, channel, CAST(items AS jsonb)
    FROM unnest(CAST(:order_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:currencies AS text[]),
                CAST(:amounts AS numeric[]), CAST(:placed_ats AS timestamptz[]), CAST(:channels AS text[]),
                CAST(:items AS text[]))
         AS t(order_id, customer_id, currency, total_amount, placed_at, channel, items)
    ON CONFLICT (order_id) DO UPDATE SET placed_at = COALESCE(o.placed_at, excluded.placed_at)
""")

_RECORD_COMPLETED = text("""
    UPDATE orders o SET completed_at = t.completed_at,
                        status = CASE WHEN o.status = 'paid' THEN 'completed' ELSE o.status END
    FROM unnest(CAST(:order_ids AS text[]), CAST(:completed_ats AS timestamptz[])) AS t(order_id, completed_at)
    WHERE o.order_id = t.order_id
""")

# Refunds and cancellations: what is given back is capped at what is left of the order, so the
# net spend never goes below zero, whatever the shop sends. A cancelled paid order is refunded
# in full. The customer's refunded-order count grows the first time an order is refunded.
_APPLY_REFUNDS = text("""
    WITH req AS (
        SELECT * FROM unnest(CAST(:order_ids AS text[]), CAST(:amounts AS numeric[]),
                             CAST(:ats AS timestamptz[]), CAST(:cancels AS boolean[]))
               AS t(order_id, amount, at, cancelled)
    ), cur AS (
        SELECT o.order_id, o.customer_id, o.currency, o.total_amount, o.refunded_amount, o.paid_at
        FROM orders o JOIN req USING (order_id) FOR UPDATE OF o
    ), delta AS (
        SELECT c.*, r.cancelled, r.at,
               CASE WHEN c.paid_at IS NULL THEN 0 ELSE LEAST(r.amount, c.total_amount - c.refunded_amount) END
                   AS refund
        FROM cur c JOIN req r USING (order_id)
    ), updated AS (
        UPDATE orders o SET
            refunded_amount = o.refunded_amount + d.refund,
            status = CASE WHEN d.cancelled THEN 'cancelled'
                          WHEN d.paid_at IS NULL THEN o.status
                          WHEN o.refunded_amount + d.refund >= o.total_amount THEN 'refunded'
                          WHEN d.refund > 0 THEN 'partially_refunded'
                          ELSE o.status END,
            cancelled_at = CASE WHEN d.cancelled THEN d.at ELSE o.cancelled_at END
        FROM delta d WHERE o.order_id = d.order_id
        RETURNING o.order_id
    ), spend AS (
        UPDATE customer_spend s SET refunded = s.refunded + x.refund
        FROM (SELECT customer_id, currency, sum(refund) AS refund FROM delta WHERE refund > 0
              GROUP BY customer_id, currency) x
        WHERE s.customer_id = x.customer_id AND s.currency = x.currency
    )
    UPDATE customers c SET refunded_order_count = c.refunded_order_count + x.first_refunds, updated_at = now()
    FROM (SELECT customer_id, count(*) FILTER (WHERE refunded_amount = 0) AS first_refunds FROM delta
          WHERE refund > 0 GROUP BY customer_id) x
    WHERE c.customer_id = x.customer_id
    RETURNING c.customer_id, c.order_count, c.first_order_at, c.last_order_at
""")

_ADD_TO_TIMELINE = text("""
    INSERT INTO timeline (customer_id, occurred_at, kind, channel, details, event_id)
    SELECT customer_id, occurred_at, kind, channel, CAST(details AS jsonb), event_id
    FROM unnest(CAST(:customer_ids AS text[]), CAST(:occurred_ats AS timestamptz[]), CAST(:kinds AS text[]),
                CAST(:channels AS text[]), CAST(:details AS text[]), CAST(:event_ids AS text[]))
         AS t(customer_id, occurred_at, kind, channel, details, event_id)
""")


def _items_json(data: OrderData) -> str:
    return orjson.dumps([item.model_dump(mode="json") for item in data.items]).decode()


async def _add_to_timeline(tx: AsyncConnection, entries: list[tuple[str, Any, str, str | None, dict, str]]) -> None:
    if entries:
        columns = list(zip(*entries, strict=True))
        await tx.execute(_ADD_TO_TIMELINE, {
            "customer_ids": list(columns[0]), "occurred_ats": list(columns[1]), "kinds": list(columns[2]),
            "channels": list(columns[3]), "details": [orjson.dumps(d).decode() for d in columns[4]],
            "event_ids": list(columns[5])})


def _order_entry(inbound: Inbound[OrderData], verb: str) -> tuple[str, Any, str, str | None, dict, str]:
    data = inbound.data
    details = {"order_id": data.order_id, "currency": data.currency, "total_amount": str(data.total_amount)}
    if isinstance(data, OrderRefundedData):
        details["refund_amount"] = str(data.refund_amount)
    return (data.customer_id, data.occurred_at, f"order.{verb}", data.channel, details, inbound.event.id)


async def on_order_placed(tx: AsyncConnection, events: list[Inbound[OrderData]]) -> None:
    await tx.execute(_RECORD_PLACED, {
        "order_ids": [e.data.order_id for e in events], "customer_ids": [e.data.customer_id for e in events],
        "currencies": [e.data.currency for e in events], "amounts": [e.data.total_amount for e in events],
        "placed_ats": [e.data.occurred_at for e in events], "channels": [e.data.channel for e in events],
        "items": [_items_json(e.data) for e in events]})
    await _add_to_timeline(tx, [_order_entry(e, "placed") for e in events])


async def on_order_paid(tx: AsyncConnection, events: list[Inbound[OrderData]]) -> None:
    result = await tx.execute(_APPLY_PAID_ORDERS, {
        "order_ids": [e.data.order_id for e in events],
        "customer_ids": [e.data.customer_id for e in events],
        "currencies": [e.data.currency for e in events],
        "amounts": [e.data.total_amount for e in events],
        "paid_ats": [e.data.occurred_at for e in events],
        "channels": [e.data.channel for e in events],
        "items": [_items_json(e.data) for e in events],
    })
    await _add_to_timeline(tx, [_order_entry(e, "paid") for e in events])
    await emit_customer_updated(tx, result.all(), changed=["orders"], traceparents=_traceparents(events))


async def on_order_completed(tx: AsyncConnection, events: list[Inbound[OrderData]]) -> None:
    await tx.execute(_RECORD_COMPLETED, {"order_ids": [e.data.order_id for e in events],
                                         "completed_ats": [e.data.occurred_at for e in events]})
    await _add_to_timeline(tx, [_order_entry(e, "completed") for e in events])


async def on_order_refunded_or_cancelled(tx: AsyncConnection, events: list[Inbound[OrderData]]) -> None:
    # One request per order: the amounts of several refunds in one batch add up (then capped in SQL).
    requests: dict[str, list[Any]] = {}
    for inbound in events:
        data = inbound.data
        cancelled = inbound.event.type == "commerce.order.cancelled"
        amount = data.total_amount if cancelled else data.refund_amount
        request = requests.setdefault(data.order_id, [Decimal(0), data.occurred_at, False])
        request[0] += amount
        request[1] = max(request[1], data.occurred_at)
        request[2] = request[2] or cancelled
    result = await tx.execute(_APPLY_REFUNDS, {
        "order_ids": list(requests), "amounts": [r[0] for r in requests.values()],
        "ats": [r[1] for r in requests.values()], "cancels": [r[2] for r in requests.values()]})
    await _add_to_timeline(tx, [
        _order_entry(e, "cancelled" if e.event.type == "commerce.order.cancelled" else "refunded") for e in events])
    await emit_customer_updated(tx, result.all(), changed=["orders"], traceparents=_traceparents(events))


_COUNT_VIEWS = text("""
    INSERT INTO customer_categories AS cc (customer_id, category, views, last_viewed_at)
    SELECT customer_id, category, count(*), max(viewed_at)
    FROM unnest(CAST(:customer_ids AS text[]), CAST(:categories AS text[]), CAST(:viewed_ats AS timestamptz[]))
         AS t(customer_id, category, viewed_at)
    GROUP BY customer_id, category
    ON CONFLICT (customer_id, category) DO UPDATE SET
        views = cc.views + excluded.views,
        last_viewed_at = GREATEST(cc.last_viewed_at, excluded.last_viewed_at)
""")


async def on_interaction_recorded(tx: AsyncConnection, events: list[Inbound[InteractionData]]) -> None:
    await _add_to_timeline(tx, [
        (e.data.customer_id, e.data.occurred_at, f"interaction.{e.data.kind}", e.data.channel,
         e.data.attributes, e.event.id) for e in events])
    # Product views with a category feed the favourite categories, next to purchases.
    views = [(e.data.customer_id, e.data.attributes["category"][:200], e.data.occurred_at) for e in events
             if e.data.kind == "product_view" and isinstance(e.data.attributes.get("category"), str)
             and e.data.attributes["category"].strip()]
    if views:
        columns = list(zip(*views, strict=True))
        await tx.execute(_COUNT_VIEWS, {"customer_ids": list(columns[0]), "categories": list(columns[1]),
                                        "viewed_ats": list(columns[2])})


# Tier and churn level are owned by the loyalty and churn services; the profile shows a copy.
_COPY_LEVEL = {
    column: text(f"""
        INSERT INTO customers AS c (customer_id, {column})
        SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:values AS text[]))
        ON CONFLICT (customer_id) DO UPDATE SET {column} = excluded.{column}, updated_at = now()
    """) for column in ("tier", "churn_level")
}


async def on_tier_changed(tx: AsyncConnection, events: list[Inbound[LoyaltyTierChangedData]]) -> None:
    latest = {e.data.customer_id: e.data.new_tier for e in events}  # in partition order: last wins
    await tx.execute(_COPY_LEVEL["tier"], {"customer_ids": list(latest), "values": list(latest.values())})
    await _add_to_timeline(tx, [(e.data.customer_id, e.data.changed_at, "loyalty.tier_changed", None,
                                 {"old_tier": e.data.old_tier, "new_tier": e.data.new_tier}, e.event.id)
                                for e in events])


async def on_points_moved(tx: AsyncConnection, events: list[Inbound[LoyaltyPointsData]]) -> None:
    """Points earned, redeemed, reversed, expired or adjusted: on the agent's timeline."""
    await _add_to_timeline(tx, [
        (e.data.customer_id, e.data.occurred_at, e.event.type.removeprefix("crm."), None,
         {key: value for key, value in (("kind", e.data.kind), ("points", e.data.points),
                                        ("available", e.data.available), ("pending", e.data.pending),
                                        ("reason", e.data.reason), ("order_id", e.data.order_id),
                                        ("redemption_id", e.data.redemption_id)) if value is not None},
         e.event.id) for e in events])


async def on_ticket_event(tx: AsyncConnection,
                          events: list[Inbound[TicketData | TicketSlaData | CsatSubmittedData]]) -> None:
    """Tickets opened, assigned, resolved, closed or reopened, SLA warnings and breaches, ratings:
    on the agent's timeline (ids, categories and states; the ticket's text stays in its service)."""
    entries = []
    for e in events:
        data = e.data.model_dump(mode="json", exclude_none=True)
        data.pop("customer_id", None)
        at = getattr(e.data, "occurred_at", None) or getattr(e.data, "submitted_at", None)
        entries.append((e.data.customer_id, at, e.event.type.removeprefix("crm."), None, data, e.event.id))
    await _add_to_timeline(tx, entries)


async def on_churn_risk_changed(tx: AsyncConnection, events: list[Inbound[ChurnRiskChangedData]]) -> None:
    latest = {e.data.customer_id: e.data.new_level for e in events}
    await tx.execute(_COPY_LEVEL["churn_level"], {"customer_ids": list(latest), "values": list(latest.values())})
    await _add_to_timeline(tx, [
        (e.data.customer_id, e.data.scored_at, "churn.risk_changed", None,
         {"old_level": e.data.old_level, "new_level": e.data.new_level, "score": e.data.score,
          "reasons": [r.model_dump() for r in e.data.reasons[:3]]}, e.event.id) for e in events])


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
        registered_at=data.registered_at, consents=consents)


def build_handlers(vault: PiiVault, phone_region: str, currency: str) -> HandlerTable:
    """The handler table, bound to the PII vault and settings (built in ``create_app``).

    After a handler changed what custom segments look at, those segments are re-evaluated for
    the customers of the batch, in the batch's transaction.
    """

    async def on_customer_registered_or_updated(tx: AsyncConnection, events: list[Inbound[CustomerData]]) -> None:
        statistics = await write_identities(tx, vault, [identity_change(e, phone_region) for e in events])
        await emit_customer_updated(tx, statistics, changed=["identity"], traceparents=_traceparents(events))
        await refresh_segments(tx, currency, _customers(events))

    def then_refresh_segments(handler):
        async def handle(tx: AsyncConnection, events: list[Inbound[Any]]) -> None:
            await handler(tx, events)
            await refresh_segments(tx, currency, _customers(events))
        return handle

    table = {
        "commerce.customer.registered": on_customer_registered_or_updated,
        "commerce.customer.updated": on_customer_registered_or_updated,
        "commerce.order.placed": on_order_placed,
        "commerce.order.paid": then_refresh_segments(on_order_paid),
        "commerce.order.completed": on_order_completed,
        "commerce.order.cancelled": then_refresh_segments(on_order_refunded_or_cancelled),
        "commerce.order.refunded": then_refresh_segments(on_order_refunded_or_cancelled),
        "commerce.interaction.recorded": then_refresh_segments(on_interaction_recorded),
        "crm.loyalty.tier.changed": then_refresh_segments(on_tier_changed),
        "crm.churn.risk.changed": then_refresh_segments(on_churn_risk_changed),
        **{f"crm.loyalty.points.{verb}": on_points_moved
           for verb in ("earned", "redeemed", "reversed", "expired", "adjusted")},
        **{f"crm.tickets.{name}": on_ticket_event
           for name in ("ticket.opened", "ticket.assigned", "ticket.resolved", "ticket.closed", "ticket.reopened",
                        "ticket.sla_warning", "ticket.sla_breached", "csat.submitted")},
    }
    return {event_type: _resolving_merged(scrubbing_erased(event_type, handler))
            for event_type, handler in table.items()}


def _resolving_merged(handler):
    """Events about a profile merged into another apply to the surviving profile."""

    async def handle(tx: AsyncConnection, events: list[Inbound[Any]]) -> None:
        survivors = await survivors_of(tx, _customers(events))
        if survivors:
            events = [Inbound(e.event, e.data.model_copy(update={"customer_id": survivors[e.data.customer_id]}),
                              e.record) if e.data.customer_id in survivors else e for e in events]
        await handler(tx, events)
    return handle


def _customers(events: list[Inbound[Any]]) -> list[str]:
    return sorted({inbound.data.customer_id for inbound in events})
