"""The churn service follows profile merges: the duplicate's history (orders, activity, tickets,
ratings) moves to the survivor, whose score is then computed from both, and back on an unmerge,
when both are scored again. Once per merge (inbox, ``customer_merges``). Handlers never commit.
"""

from __future__ import annotations

from crm_shared.bus import HandlerTable, Inbound
from crm_shared.events.catalogue import ProfileCustomerMergedData, ProfileCustomerUnmergedData
from crm_shared.merges import MERGED, UNMERGED, claim_merge, close_merge, lock_merge_in_force, set_moved
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_churn.merge_repository import move_history, move_history_back
from crm_churn.scoring import Scorer


def merge_handlers(scorer: Scorer) -> HandlerTable:
    async def on_customer_merged(tx: AsyncConnection, events: list[Inbound[ProfileCustomerMergedData]]) -> None:
        touched: list[str] = []
        for inbound in events:
            survivor, duplicate = inbound.data.customer_id, inbound.data.merged_customer_id
            merge_id = await claim_merge(tx, survivor=survivor, duplicate=duplicate, at=inbound.data.merged_at,
                                         event_id=inbound.event.id)
            if merge_id is not None:
                await set_moved(tx, merge_id, await move_history(tx, duplicate=duplicate, survivor=survivor))
                touched.append(survivor)
        if touched:
            await scorer.rescore(tx, touched, trigger="event", traceparent=events[-1].event.traceparent)

    async def on_customer_unmerged(tx: AsyncConnection, events: list[Inbound[ProfileCustomerUnmergedData]]
                                   ) -> None:
        touched: list[str] = []
        for inbound in events:
            survivor, duplicate = inbound.data.customer_id, inbound.data.unmerged_customer_id
            record = await lock_merge_in_force(tx, survivor=survivor, duplicate=duplicate)
            if record is not None:
                await move_history_back(tx, record.moved, survivor=survivor, duplicate=duplicate)
                await close_merge(tx, record.merge_id, inbound.data.unmerged_at)
                touched += [survivor, duplicate]
        if touched:
            await scorer.rescore(tx, touched, trigger="event", traceparent=events[-1].event.traceparent)

    return {MERGED: on_customer_merged, UNMERGED: on_customer_unmerged}
