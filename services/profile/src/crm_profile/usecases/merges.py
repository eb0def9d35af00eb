"""Merging a duplicate into a profile, and undoing it (the rules: domain/merges.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from crm_shared.errors import RuleViolation
from crm_shared.uow import UnitOfWork

from crm_profile.domain.events import customer_merged, customer_unmerged
from crm_profile.domain.merges import UNPROCESSABLE, merged_stats, refuse_merge, refuse_self_merge, refuse_unmerge
from crm_profile.repository import ProfileRepository
from crm_profile.usecases.identity import announce_updates
from crm_profile.usecases.segments import refresh_segments

Uow = UnitOfWork[ProfileRepository]


class Merged(NamedTuple):
    order_count: int       # the survivor's, after the merge
    merged_at: datetime


class Unmerged(NamedTuple):
    order_count: int           # the survivor's, counted again
    unmerged_order_count: int  # the duplicate's, counted again
    unmerged_at: datetime


async def merge_profiles(uow: Uow, *, survivor: str, merged: str, identifier: str, reason: str, actor: str,
                         currency: str, traceparent: str | None = None) -> Merged:
    """Merge ``merged`` into ``survivor`` when both hold the same normalised ``identifier``: what
    the duplicate has moves to the survivor, the merge is journaled, and
    ``crm.profile.customer.merged`` tells the other services."""
    refuse_self_merge(survivor, merged)
    rows = await uow.repo.lock_pair(survivor, merged)
    refuse_merge(survivor, merged, rows, identifier)
    await uow.repo.merge(survivor=survivor, merged=merged, identifier=identifier, reason=reason, actor=actor,
                         stats=merged_stats(rows[merged]))
    (stats,) = await uow.repo.statistics_of([survivor])
    merged_at = datetime.now(UTC)
    await uow.publish([customer_merged(customer_id=survivor, merged_customer_id=merged, merged_at=merged_at,
                                       traceparent=traceparent)])
    await announce_updates(uow, [stats], changed=["merge"], traceparents={})
    await refresh_segments(uow, currency, [survivor])
    return Merged(stats.order_count, merged_at)


async def unmerge_profiles(uow: Uow, *, survivor: str, merged: str, reason: str, actor: str, currency: str,
                           traceparent: str | None = None) -> Unmerged:
    """Undo the merge of ``merged`` into ``survivor``: what the merge moved goes back; what reached
    the survivor since stays with it; both profiles' statistics are counted again from their orders."""
    unmerged_at = datetime.now(UTC)
    rows = await uow.repo.lock_pair(survivor, merged)
    refuse_unmerge(survivor, merged, rows)
    journal = await uow.repo.merge_in_force(survivor, merged)
    if journal is None or not journal.moved:
        raise RuleViolation("this merge predates unmerging: what it moved was not recorded", code=UNPROCESSABLE)
    await uow.repo.unmerge(survivor=survivor, merged=merged, journal=journal, reason=reason, actor=actor,
                           at=unmerged_at)
    both = await uow.repo.statistics_of([survivor, merged])
    await uow.publish([customer_unmerged(customer_id=survivor, unmerged_customer_id=merged, unmerged_at=unmerged_at,
                                         traceparent=traceparent)])
    await announce_updates(uow, both, changed=["unmerge"], traceparents={})
    await refresh_segments(uow, currency, [survivor, merged])
    counts = {s.customer_id: s.order_count for s in both}
    return Unmerged(counts[survivor], counts[merged], unmerged_at)


async def find_duplicates(uow: Uow, customer_id: str) -> list[tuple[str, list[str]]]:
    """Other profiles with the same normalised e-mail or phone, and which of the two they share."""
    return [(other, [k for k, same in (("email", same_email), ("phone", same_phone)) if same])
            for other, same_email, same_phone in await uow.repo.find_duplicates(customer_id)]
