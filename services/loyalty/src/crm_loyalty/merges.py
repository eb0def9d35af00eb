"""The loyalty service follows profile merges: points, lots, orders, redemptions and tier move to
the survivor, and back on an unmerge (rules in ``domain/merging.py``, SQL in ``merge_repository.py``).

Each merge is applied once: the inbox drops a redelivered event, and ``customer_merges`` (one merge
in force per duplicate) drops the same merge sent again under another id. While it is in force,
events about the duplicate's id apply to the survivor (``crm_shared.merges.resolving_merged``).
Handlers never commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crm_shared.bus import HandlerTable, Inbound
from crm_shared.bus.consumer import Handler
from crm_shared.events.catalogue import ProfileCustomerMergedData, ProfileCustomerUnmergedData
from crm_shared.merges import (
    MERGED,
    UNMERGED,
    claim_merge,
    close_merge,
    ever_merged,
    lock_merge_in_force,
    set_moved,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_loyalty.domain.events import tier_changed
from crm_loyalty.domain.merging import hand_back, hand_over
from crm_loyalty.domain.programme import Programme
from crm_loyalty.merge_repository import (
    duplicates_own_movements,
    last_ledger_entry,
    move_back,
    move_everything,
    order_owners,
)
from crm_loyalty.repository import Member, ProgrammeStore, lock_members, rolling_spend, save_members


def _now() -> datetime:
    return datetime.now(UTC)


def _tier_state(member: Member) -> list[str | None]:
    return [member.tier, member.tier_since.isoformat(),
            member.below_tier_since.isoformat() if member.below_tier_since else None]


def _set_tier(member: Member, tier: str, since: datetime, below: datetime | None, at: datetime) -> None:
    if tier != member.tier:
        member.events.append(tier_changed(member.customer_id, member.tier, tier, at, member.traceparent))
    member.tier, member.tier_since, member.below_tier_since = tier, since, below


class MergeHandlers:
    def __init__(self, store: ProgrammeStore, apply_tier) -> None:
        self.store = store
        self.apply_tier = apply_tier  # usecases.apply_tier: the one way a tier is re-evaluated

    def table(self) -> HandlerTable:
        return {MERGED: self.on_customer_merged, UNMERGED: self.on_customer_unmerged}

    async def _requalify(self, tx: AsyncConnection, members: list[Member], programme: Programme) -> None:
        now = _now()
        stats = await rolling_spend(tx, [m.customer_id for m in members], programme, now)
        for member in members:
            self.apply_tier(member, programme, *stats[member.customer_id], now, allow_downgrade=False)

    async def on_customer_merged(self, tx: AsyncConnection, events: list[Inbound[ProfileCustomerMergedData]]
                                 ) -> None:
        """The duplicate's whole account joins the survivor's; the survivor keeps the higher of the
        two tiers and is re-evaluated on the combined spend."""
        programme = (await self.store.timeline(tx)).current
        for inbound in events:  # one by one: a batch may hold merges that touch the same accounts
            survivor_id, duplicate_id = inbound.data.customer_id, inbound.data.merged_customer_id
            merge_id = await claim_merge(tx, survivor=survivor_id, duplicate=duplicate_id,
                                         at=inbound.data.merged_at, event_id=inbound.event.id)
            if merge_id is None:
                continue
            members = await lock_members(tx, [survivor_id, duplicate_id], entry_tier=programme.tiers.levels[0].name,
                                         at=_now(), with_lots=True)
            survivor, duplicate = members[survivor_id], members[duplicate_id]
            survivor.traceparent = duplicate.traceparent = inbound.event.traceparent
            tiers = {survivor_id: _tier_state(survivor), duplicate_id: _tier_state(duplicate)}
            moved = await move_everything(tx, duplicate=duplicate_id, survivor=survivor_id)
            handed = hand_over(duplicate.book, survivor.book, at=inbound.data.merged_at,
                               reason_out=f"merged into {survivor_id}", reason_in=f"merged from {duplicate_id}")
            if programme.tiers.rank(duplicate.tier) > programme.tiers.rank(survivor.tier):
                _set_tier(survivor, duplicate.tier, duplicate.tier_since, duplicate.below_tier_since,
                          inbound.data.merged_at)
            await self._requalify(tx, [survivor], programme)
            await save_members(tx, [survivor, duplicate])
            await set_moved(tx, merge_id, {
                **moved, "available": handed.available, "pending": handed.pending, "debt": handed.debt,
                "lifetime_earned": handed.lifetime_earned, "tiers": tiers,
                "ledger_mark": await last_ledger_entry(tx, survivor_id)})

    async def on_customer_unmerged(self, tx: AsyncConnection, events: list[Inbound[ProfileCustomerUnmergedData]]
                                   ) -> None:
        """What the merge moved goes back, what the survivor did with the duplicate's points is
        settled (domain/merging.py), and each goes back to its own tier (or higher, on its own spend)."""
        timeline = await self.store.timeline(tx)
        programme = timeline.current
        for inbound in events:
            survivor_id, duplicate_id = inbound.data.customer_id, inbound.data.unmerged_customer_id
            record = await lock_merge_in_force(tx, survivor=survivor_id, duplicate=duplicate_id)
            if record is None:  # never merged here, or undone already
                continue
            moved = record.moved
            members = await lock_members(tx, [survivor_id, duplicate_id], entry_tier=programme.tiers.levels[0].name,
                                         at=_now(), with_lots=True)
            survivor, duplicate = members[survivor_id], members[duplicate_id]
            survivor.traceparent = duplicate.traceparent = inbound.event.traceparent
            moved_lots = set(moved["lots"])
            lots = [lot for lot in survivor.book.open_lots() if lot.lot_id in moved_lots]
            own, reversed_points = await duplicates_own_movements(
                tx, survivor=survivor_id, since=moved["ledger_mark"], orders=moved["orders"], lots=moved["lots"])
            rightful = moved["available"] + moved["pending"] - moved["debt"] + own
            owed = rightful - sum(lot.remaining for lot in lots)
            await move_back(tx, moved, survivor=survivor_id, duplicate=duplicate_id)
            at = inbound.data.unmerged_at
            hand_back(survivor.book, duplicate.book, lots, owed=owed,
                      lifetime_earned=moved["lifetime_earned"] + reversed_points, at=at,
                      expiry_months=programme.earning.expiry_months, reason=f"merge of {duplicate_id} into "
                                                                            f"{survivor_id} undone")
            for member in (survivor, duplicate):
                tier, since, below = moved["tiers"][member.customer_id]
                _set_tier(member, tier, datetime.fromisoformat(since),
                          datetime.fromisoformat(below) if below else None, at)
            await self._requalify(tx, [survivor, duplicate], programme)
            await save_members(tx, [survivor, duplicate])
            await close_merge(tx, record.merge_id, at)


def by_order_owner(handler: Handler) -> Handler:
    """Later events of a known order apply to the account that holds it: after an unmerge, an
    order paid under the duplicate's id while the merge was in force stays with the survivor, and
    so do its refund and completion."""

    async def handle(tx: AsyncConnection, events: list[Inbound[Any]]) -> None:
        owners = await order_owners(tx, [e.data.order_id for e in events])
        moved = {(owners[e.data.order_id], e.data.customer_id) for e in events
                 if owners.get(e.data.order_id, e.data.customer_id) != e.data.customer_id}
        # Only an order that moved with a merge changes hands; any other order named under another
        # customer than its payer is the handler's to refuse (dead-lettered).
        related = await ever_merged(tx, moved)
        events = [Inbound(e.event, e.data.model_copy(update={"customer_id": owners[e.data.order_id]}), e.record)
                  if frozenset((owners.get(e.data.order_id, e.data.customer_id), e.data.customer_id)) in related
                  else e for e in events]
        await handler(tx, events)
    return handle
