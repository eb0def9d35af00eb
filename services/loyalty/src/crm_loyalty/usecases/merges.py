"""The loyalty service follows profile merges: points, lots, orders, redemptions and tier move to
the survivor, and back on an unmerge (rules in ``domain/merging.py``).

Each merge is applied once: the inbox drops a redelivered event, and ``customer_merges`` (one merge
in force per duplicate) drops the same merge sent again under another id. While it is in force,
events about the duplicate's id apply to the survivor (``crm_shared.merges.resolving_merged`` in
``handlers.py``). Nothing here commits.
"""

from __future__ import annotations

from datetime import datetime

from crm_shared.merges import Merge

from crm_loyalty.domain.events import tier_changed
from crm_loyalty.domain.members import Member
from crm_loyalty.domain.merging import hand_back, hand_over
from crm_loyalty.usecases.common import ProgrammeStore, Uow, now, requalify, save


def _tier_state(member: Member) -> list[str | None]:
    return [member.tier, member.tier_since.isoformat(),
            member.below_tier_since.isoformat() if member.below_tier_since else None]


def _set_tier(member: Member, tier: str, since: datetime, below: datetime | None, at: datetime) -> None:
    if tier != member.tier:
        member.events.append(tier_changed(member.customer_id, member.tier, tier, at, member.traceparent))
    member.tier, member.tier_since, member.below_tier_since = tier, since, below


async def customers_merged(uow: Uow, store: ProgrammeStore, merges: list[Merge]) -> None:
    """The duplicate's whole account joins the survivor's; the survivor keeps the higher of the
    two tiers and is re-evaluated on the combined spend."""
    repo = uow.repo
    programme = (await store.timeline(uow)).current
    for merge in merges:  # one by one: a batch may hold merges that touch the same accounts
        survivor_id, duplicate_id = merge.survivor, merge.duplicate
        merge_id = await repo.claim_merge(survivor=survivor_id, duplicate=duplicate_id, at=merge.at,
                                          event_id=merge.event_id)
        if merge_id is None:
            continue
        members = await repo.lock_members([survivor_id, duplicate_id], entry_tier=programme.tiers.levels[0].name,
                                          at=now(), with_lots=True)
        survivor, duplicate = members[survivor_id], members[duplicate_id]
        survivor.traceparent = duplicate.traceparent = merge.traceparent
        tiers = {survivor_id: _tier_state(survivor), duplicate_id: _tier_state(duplicate)}
        moved = await repo.move_everything(duplicate=duplicate_id, survivor=survivor_id)
        handed = hand_over(duplicate.book, survivor.book, at=merge.at,
                           reason_out=f"merged into {survivor_id}", reason_in=f"merged from {duplicate_id}")
        if programme.tiers.rank(duplicate.tier) > programme.tiers.rank(survivor.tier):
            _set_tier(survivor, duplicate.tier, duplicate.tier_since, duplicate.below_tier_since, merge.at)
        await requalify(uow, [survivor], programme, now())
        await save(uow, [survivor, duplicate])
        await repo.set_moved(merge_id, {
            **moved, "available": handed.available, "pending": handed.pending, "debt": handed.debt,
            "lifetime_earned": handed.lifetime_earned, "tiers": tiers,
            "ledger_mark": await repo.last_ledger_entry(survivor_id)})


async def customers_unmerged(uow: Uow, store: ProgrammeStore, unmerges: list[Merge]) -> None:
    """What the merge moved goes back, what the survivor did with the duplicate's points is
    settled (domain/merging.py), and each goes back to its own tier (or higher, on its own spend)."""
    repo = uow.repo
    programme = (await store.timeline(uow)).current
    for unmerge in unmerges:
        survivor_id, duplicate_id = unmerge.survivor, unmerge.duplicate
        record = await repo.lock_merge_in_force(survivor=survivor_id, duplicate=duplicate_id)
        if record is None:  # never merged here, or undone already
            continue
        moved = record.moved
        members = await repo.lock_members([survivor_id, duplicate_id], entry_tier=programme.tiers.levels[0].name,
                                          at=now(), with_lots=True)
        survivor, duplicate = members[survivor_id], members[duplicate_id]
        survivor.traceparent = duplicate.traceparent = unmerge.traceparent
        moved_lots = set(moved["lots"])
        lots = [lot for lot in survivor.book.open_lots() if lot.lot_id in moved_lots]
        own, reversed_points = await repo.duplicates_own_movements(
            survivor=survivor_id, since=moved["ledger_mark"], orders=moved["orders"], lots=moved["lots"])
        rightful = moved["available"] + moved["pending"] - moved["debt"] + own
        owed = rightful - sum(lot.remaining for lot in lots)
        await repo.move_back(moved, survivor=survivor_id, duplicate=duplicate_id)
        at = unmerge.at
        hand_back(survivor.book, duplicate.book, lots, owed=owed,
                  lifetime_earned=moved["lifetime_earned"] + reversed_points, at=at,
                  expiry_months=programme.earning.expiry_months, reason=f"merge of {duplicate_id} into "
                                                                        f"{survivor_id} undone")
        for member in (survivor, duplicate):
            tier, since, below = moved["tiers"][member.customer_id]
            _set_tier(member, tier, datetime.fromisoformat(since),
                      datetime.fromisoformat(below) if below else None, at)
        await requalify(uow, [survivor, duplicate], programme, now())
        await save(uow, [survivor, duplicate])
        await repo.close_merge(record.merge_id, at)
