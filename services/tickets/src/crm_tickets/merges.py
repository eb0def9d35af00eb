"""The tickets service follows profile merges: the duplicate's tickets and ratings move to the
survivor (its 360 and its history show them), and back on an unmerge; tickets opened for the
survivor since stay with it. Once per merge (inbox, ``customer_merges``). Handlers never commit.
"""

from __future__ import annotations

from crm_shared.bus import HandlerTable, Inbound
from crm_shared.events.catalogue import ProfileCustomerMergedData, ProfileCustomerUnmergedData
from crm_shared.merges import MERGED, UNMERGED, claim_merge, close_merge, lock_merge_in_force, set_moved
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_tickets.merge_repository import move_tickets, move_tickets_back


async def on_customer_merged(tx: AsyncConnection, events: list[Inbound[ProfileCustomerMergedData]]) -> None:
    for inbound in events:
        survivor, duplicate = inbound.data.customer_id, inbound.data.merged_customer_id
        merge_id = await claim_merge(tx, survivor=survivor, duplicate=duplicate, at=inbound.data.merged_at,
                                     event_id=inbound.event.id)
        if merge_id is not None:
            await set_moved(tx, merge_id, await move_tickets(tx, duplicate=duplicate, survivor=survivor))


async def on_customer_unmerged(tx: AsyncConnection, events: list[Inbound[ProfileCustomerUnmergedData]]) -> None:
    for inbound in events:
        survivor, duplicate = inbound.data.customer_id, inbound.data.unmerged_customer_id
        record = await lock_merge_in_force(tx, survivor=survivor, duplicate=duplicate)
        if record is not None:
            await move_tickets_back(tx, record.moved, survivor=survivor, duplicate=duplicate)
            await close_merge(tx, record.merge_id, inbound.data.unmerged_at)


def merge_handlers() -> HandlerTable:
    return {MERGED: on_customer_merged, UNMERGED: on_customer_unmerged}
