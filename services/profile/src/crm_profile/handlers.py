"""Event handlers of the profile service, registered in one table by event type.

Each handler gets every event of its type from one stage of a batch and applies them with
set-based SQL in the consumer's transaction (design brief §2: one transaction per event is far
too slow). Handlers never commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crm_shared.bus import HandlerTable, Inbound
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS, CustomerData, OrderData
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.domain.identity import normalise_email, normalise_phone
from crm_profile.domain.pii import PiiVault
from crm_profile.repository import IdentityChange, emit_customer_updated, write_identities

TOPICS = (TOPIC_CUSTOMERS, TOPIC_ORDERS)

# Paid orders: the orders table makes each order count once whatever the event id; the customer's
# statistics grow by what was really new. One statement for the whole run.
_APPLY_PAID_ORDERS = text("""
    WITH incoming AS (
        SELECT DISTINCT ON (order_id) *
        FROM unnest(CAST(:order_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:currencies AS text[]),
                    CAST(:amounts AS numeric[]), CAST(:paid_ats AS timestamptz[]))
             AS t(order_id, customer_id, currency, total_amount, paid_at)
        ORDER BY order_id
    ), new_orders AS (
        INSERT INTO orders (order_id, customer_id, currency, total_amount, paid_at)
        SELECT order_id, customer_id, currency, total_amount, paid_at FROM incoming
        ON CONFLICT (order_id) DO NOTHING
        RETURNING customer_id, currency, total_amount, paid_at
    ), spend AS (
        INSERT INTO customer_spend AS s (customer_id, currency, amount)
        SELECT customer_id, currency, sum(total_amount) FROM new_orders GROUP BY customer_id, currency
        ON CONFLICT (customer_id, currency) DO UPDATE SET amount = s.amount + excluded.amount
    )
    INSERT INTO customers AS c (customer_id, order_count, first_order_at, last_order_at)
    SELECT customer_id, count(*), min(paid_at), max(paid_at) FROM new_orders GROUP BY customer_id
    ON CONFLICT (customer_id) DO UPDATE SET
        order_count    = c.order_count + excluded.order_count,
        first_order_at = LEAST(c.first_order_at, excluded.first_order_at),
        last_order_at  = GREATEST(c.last_order_at, excluded.last_order_at),
        updated_at     = now()
    RETURNING customer_id, order_count, first_order_at, last_order_at
""")



async def on_order_paid(tx: AsyncConnection, events: list[Inbound[OrderData]]) -> None:
    result = await tx.execute(_APPLY_PAID_ORDERS, {
        "order_ids": [e.data.order_id for e in events],
        "customer_ids": [e.data.customer_id for e in events],
        "currencies": [e.data.currency for e in events],
        "amounts": [e.data.total_amount for e in events],
        "paid_ats": [e.data.occurred_at for e in events],
    })
    await emit_customer_updated(tx, result.all(), changed=["orders"], traceparents=_traceparents(events))


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


def build_handlers(vault: PiiVault, phone_region: str) -> HandlerTable:
    """The handler table, bound to the PII vault (built from settings in ``create_app``)."""

    async def on_customer_registered_or_updated(tx: AsyncConnection, events: list[Inbound[CustomerData]]) -> None:
        statistics = await write_identities(tx, vault, [identity_change(e, phone_region) for e in events])
        await emit_customer_updated(tx, statistics, changed=["identity"], traceparents=_traceparents(events))

    return {
        "commerce.customer.registered": on_customer_registered_or_updated,
        "commerce.customer.updated": on_customer_registered_or_updated,
        "commerce.order.paid": on_order_paid,
    }
