"""Event handlers of the profile service, registered in one table by event type.

Each handler gets every event of its type from one stage of a batch and applies them with
set-based SQL in the consumer's transaction (design brief §2: one transaction per event is far
too slow). Handlers never commit.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from crm_shared.bus import HandlerTable, Inbound, add_to_outbox
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS, CustomerData, OrderData
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.domain.events import customer_updated
from crm_profile.domain.identity import normalise_email, normalise_phone

TOPICS = (TOPIC_CUSTOMERS, TOPIC_ORDERS)

# Identity: a null in an update means "not sent", never "erase" (erasure is a privacy command).
_UPSERT_IDENTITY = text("""
    INSERT INTO customers AS c (customer_id, email, phone, name, birthday, gender, city,
                                registered_at, consent_email, consent_sms)
    SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:emails AS text[]), CAST(:phones AS text[]),
                         CAST(:names AS text[]), CAST(:birthdays AS date[]), CAST(:genders AS text[]),
                         CAST(:cities AS text[]), CAST(:registered_ats AS timestamptz[]),
                         CAST(:consent_emails AS boolean[]), CAST(:consent_smss AS boolean[]))
    ON CONFLICT (customer_id) DO UPDATE SET
        email         = COALESCE(excluded.email, c.email),
        phone         = COALESCE(excluded.phone, c.phone),
        name          = COALESCE(excluded.name, c.name),
        birthday      = COALESCE(excluded.birthday, c.birthday),
        gender        = COALESCE(excluded.gender, c.gender),
        city          = COALESCE(excluded.city, c.city),
        registered_at = COALESCE(c.registered_at, excluded.registered_at),
        consent_email = COALESCE(excluded.consent_email, c.consent_email),
        consent_sms   = COALESCE(excluded.consent_sms, c.consent_sms),
        updated_at    = now()
    RETURNING customer_id, order_count, first_order_at, last_order_at
""")

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

_SPEND_OF = text("""
    SELECT customer_id, currency, amount FROM customer_spend WHERE customer_id = ANY(CAST(:ids AS text[]))
""")


async def on_customer_registered_or_updated(tx: AsyncConnection, events: list[Inbound[CustomerData]]) -> None:
    latest: dict[str, CustomerData] = {}
    for inbound in events:  # in partition order, so the last one wins
        latest[inbound.data.customer_id] = inbound.data
    rows = list(latest.values())
    consents = [d.consents for d in rows]
    result = await tx.execute(_UPSERT_IDENTITY, {
        "customer_ids": [d.customer_id for d in rows],
        "emails": [normalise_email(d.email) for d in rows],
        "phones": [normalise_phone(d.phone) for d in rows],
        "names": [d.name for d in rows],
        "birthdays": [d.birthday for d in rows],
        "genders": [d.gender for d in rows],
        "cities": [d.city for d in rows],
        "registered_ats": [d.registered_at for d in rows],
        "consent_emails": [c.email if c else None for c in consents],
        "consent_smss": [c.sms if c else None for c in consents],
    })
    await _emit_updated(tx, result.all(), events, changed=["identity"])


async def on_order_paid(tx: AsyncConnection, events: list[Inbound[OrderData]]) -> None:
    result = await tx.execute(_APPLY_PAID_ORDERS, {
        "order_ids": [e.data.order_id for e in events],
        "customer_ids": [e.data.customer_id for e in events],
        "currencies": [e.data.currency for e in events],
        "amounts": [e.data.total_amount for e in events],
        "paid_ats": [e.data.occurred_at for e in events],
    })
    await _emit_updated(tx, result.all(), events, changed=["orders"])


async def _emit_updated(tx: AsyncConnection, changed_rows: list[Any], causes: list[Inbound[Any]],
                        changed: list[str]) -> None:
    """One ``crm.profile.customer.updated`` per changed customer, in the same transaction."""
    if not changed_rows:
        return
    ids = [row.customer_id for row in changed_rows]
    spend: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for row in await tx.execute(_SPEND_OF, {"ids": ids}):
        spend[row.customer_id][row.currency] = row.amount
    cause_of = {inbound.data.customer_id: inbound.event.traceparent for inbound in causes}
    await add_to_outbox(tx, [
        customer_updated(customer_id=row.customer_id, changed=changed, order_count=row.order_count,
                         total_spent=spend.get(row.customer_id, {}), first_order_at=row.first_order_at,
                         last_order_at=row.last_order_at, cause_traceparent=cause_of.get(row.customer_id))
        for row in changed_rows
    ])


HANDLERS: HandlerTable = {
    "commerce.customer.registered": on_customer_registered_or_updated,
    "commerce.customer.updated": on_customer_registered_or_updated,
    "commerce.order.paid": on_order_paid,
}
