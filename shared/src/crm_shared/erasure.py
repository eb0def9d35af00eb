"""The tombstone every service that holds personal data keeps of the customers the profile erased.

``crm.profile.customer.erased`` names the customer and every duplicate merged into it. Each service
records those ids in its own ``erased_customers`` table (created by
:func:`crm_shared.migrations.create_erased_customers`) in the same transaction as its own scrubbing,
so that what arrives later (a late order, a churn warning, an agent's write) is recognised and
stores no personal data again. What each service scrubs is its own rule (its repository's erasure
statements, called by its use case); a write about an erased customer raises
``crm_shared.errors.CustomerErased``, a 409.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_shared.bus import Inbound
from crm_shared.events.catalogue import ProfileCustomerErasedData

# What replaces free text people wrote about an erased customer.
ERASED_TEXT = "(erased)"

_TOMBSTONE = text("""
    INSERT INTO erased_customers (customer_id, erased_at)
    SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:ats AS timestamptz[]))
    ON CONFLICT (customer_id) DO NOTHING
""")
_ERASED_AMONG = text("SELECT customer_id FROM erased_customers WHERE customer_id = ANY(CAST(:ids AS text[]))")


def erased_at_of(events: Sequence[Inbound[ProfileCustomerErasedData]]) -> dict[str, datetime]:
    """Erased id → when, for a batch of erasure events (an id named twice keeps its first time)."""
    erased_at: dict[str, datetime] = {}
    for inbound in events:
        for customer_id in inbound.data.erased_ids:
            erased_at.setdefault(customer_id, inbound.data.erased_at)
    return erased_at


async def record_erased(tx: AsyncConnection, erased_at: Mapping[str, datetime]) -> list[str]:
    """Record these ids as erased (idempotent: a replayed erasure changes nothing) and return them,
    for the service to scrub in the same transaction."""
    ids = list(erased_at)
    await tx.execute(_TOMBSTONE, {"ids": ids, "ats": [erased_at[i] for i in ids]})
    return ids


async def record_erasures(tx: AsyncConnection, events: Sequence[Inbound[ProfileCustomerErasedData]]) -> list[str]:
    """:func:`record_erased` for a batch of erasure events."""
    return await record_erased(tx, erased_at_of(events))


async def erased_among(tx: AsyncConnection, customer_ids: Sequence[str]) -> set[str]:
    return {row.customer_id for row in await tx.execute(_ERASED_AMONG, {"ids": list(customer_ids)})}
