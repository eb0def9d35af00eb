"""Profile merges and erasure in the churn service.

A merge moves the duplicate's history (orders, activity, tickets, ratings) to the survivor, whose
score is then computed from both; an unmerge moves it back and both are scored again. Once per
merge (``customer_merges``). Erasure deletes the customer's history and score for good, for the
customer and every duplicate merged into it (the event names them); the ids are kept, so later
events about them are skipped (see ``events``). Never commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from crm_shared.merges import Merge

from crm_churn.usecases.scoring import Scorer, rescore

if TYPE_CHECKING:
    from crm_shared.uow import UnitOfWork

    from crm_churn.repository import ChurnRepository

    Uow = UnitOfWork[ChurnRepository]



async def merge(uow: Uow, scorer: Scorer, merges: Sequence[Merge], *, traceparent: str | None = None) -> list[str]:
    """Apply the merges not seen before; returns the survivors rescored."""
    touched: list[str] = []
    for m in merges:
        merge_id = await uow.repo.claim_merge(survivor=m.survivor, duplicate=m.duplicate, at=m.at,
                                              event_id=m.event_id)
        if merge_id is not None:
            await uow.repo.set_moved(merge_id, await uow.repo.move_history(duplicate=m.duplicate,
                                                                           survivor=m.survivor))
            touched.append(m.survivor)
    if touched:
        await rescore(uow, scorer, touched, trigger="event", traceparent=traceparent)
    return touched


async def unmerge(uow: Uow, scorer: Scorer, unmerges: Sequence[Merge], *,
                  traceparent: str | None = None) -> list[str]:
    """Undo the merges in force among these; returns the customers rescored (survivor, duplicate)."""
    touched: list[str] = []
    for m in unmerges:
        record = await uow.repo.lock_merge_in_force(survivor=m.survivor, duplicate=m.duplicate)
        if record is not None:
            await uow.repo.move_history_back(record.moved, survivor=m.survivor, duplicate=m.duplicate)
            await uow.repo.close_merge(record.merge_id, m.at)
            touched += [m.survivor, m.duplicate]
    if touched:
        await rescore(uow, scorer, touched, trigger="event", traceparent=traceparent)
    return touched


async def erase(uow: Uow, erased_at: Mapping[str, datetime]) -> None:
    """Erase these customers (id → when): idempotent, a replayed erasure changes nothing."""
    await uow.repo.erase(erased_at)
