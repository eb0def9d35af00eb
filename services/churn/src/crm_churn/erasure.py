"""Erasure in the churn service: the customer's history and score are deleted, and stay deleted.

Nothing here is needed for the shop's figures (a refit simply no longer sees the customer), so
erasure deletes it for the customer and every duplicate merged into it
(``crm.profile.customer.erased`` names them). The ids are kept in ``erased_customers``, and events
about them that arrive later (orders, interactions, tickets) are skipped rather than recorded:
a score would rebuild a behavioural profile of the person, and a risk change would set off
win-back offers and call-centre follow-ups for someone who asked to be forgotten. Skipped events
are still recorded in the inbox, so they are not dead-lettered and not applied later.
"""

from __future__ import annotations

from typing import Any

from crm_shared.bus import Inbound
from crm_shared.erasure import erased_among, record_erasures
from crm_shared.events.catalogue import ProfileCustomerErasedData
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

HISTORY_TABLES = ("churn_orders", "churn_activity", "churn_tickets", "churn_csat", "churn_scores", "churn_customers")

_DELETE = {table: text(f"DELETE FROM {table} WHERE customer_id = ANY(CAST(:ids AS text[]))")
           for table in HISTORY_TABLES}


async def erase_customers(tx: AsyncConnection, events: list[Inbound[ProfileCustomerErasedData]]) -> None:
    """Apply erasures (idempotent: a replayed one changes nothing)."""
    ids = await record_erasures(tx, events)
    for statement in _DELETE.values():
        await tx.execute(statement, {"ids": ids})


def skipping_erased(handler):
    """Wrap a handler so that it never sees events about erased customers."""

    async def handle(tx: AsyncConnection, events: list[Inbound[Any]]) -> None:
        ids = sorted({e.data.customer_id for e in events})
        erased = await erased_among(tx, ids)
        if erased:
            events = [e for e in events if e.data.customer_id not in erased]
        if events:
            await handler(tx, events)
    return handle
