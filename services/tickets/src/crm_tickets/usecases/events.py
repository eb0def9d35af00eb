"""What the tickets service does with other services' events, one function per event batch.

It keeps a copy of each customer's tier and churn level (they set priorities and SLA targets),
turns a key customer's turn to high churn risk into a follow-up task for the call centre, erases
free text when the profile erases a customer, and follows merges: the duplicate's tickets and
ratings move to the survivor, and back on an unmerge (tickets opened for the survivor since stay
with it), once per merge (``customer_merges``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crm_shared.merges import Merge

from crm_tickets.usecases.policy import PolicyStore
from crm_tickets.usecases.workflow import Uow, open_ticket


@dataclass(frozen=True, slots=True)
class RiskChange:
    """One ``crm.churn.risk.changed``: ``reasons`` are (factor, contribution), strongest first."""

    customer_id: str
    old_level: str | None
    new_level: str
    score: float
    model_version: str
    reasons: Sequence[tuple[str, float]]
    scored_at: datetime
    traceparent: str | None = None



async def tiers_changed(uow: Uow, latest: dict[str, str]) -> None:
    """Each customer's latest tier (partition order: the last of a batch wins)."""
    await uow.repo.copy_levels("tier", latest)


async def churn_risk_changed(uow: Uow, policies: PolicyStore, changes: Sequence[RiskChange]) -> list[Any]:
    """Copy the levels; a key customer turning high-risk gets one follow-up task per period, due
    within ``follow_up_due_hours`` (a redelivered or repeated warning finds the period taken, and a
    late warning about an erased customer opens none). Returns the tickets opened."""
    latest = {c.customer_id: c.new_level for c in changes}
    await uow.repo.copy_levels("churn_level", latest)
    _, policy = await policies.current(uow)
    erased = await uow.repo.erased_among(list(latest))
    opened = []
    for change in changes:
        if change.new_level != "high" or change.old_level == "high" or change.customer_id in erased:
            continue
        if not await uow.repo.claim_follow_up(change.customer_id, at=change.scored_at, key_tiers=policy.key_tiers,
                                              period_days=policy.follow_up_period_days):
            continue
        reasons = "; ".join(f"{factor} ({contribution:.2f})" for factor, contribution in change.reasons[:3])
        opened.append(await open_ticket(uow, policy, fields={
            "customer_id": change.customer_id, "kind": "follow_up", "channel": "system",
            "category": "churn_follow_up", "subject": "Call back a key customer at high churn risk",
            "description": f"Churn risk {change.score:.2f} (model {change.model_version}). Reasons: {reasons}",
            "items": []}, actor="system:churn", now=change.scored_at,
            due_within=timedelta(hours=policy.follow_up_due_hours), traceparent=change.traceparent))
    return opened


async def customers_erased(uow: Uow, erased_at: dict[str, datetime]) -> list[str]:
    """Erasure: what people wrote goes, the figures stay.

    For the customer and every duplicate merged into it (``crm.profile.customer.erased`` names them;
    ``erased_at`` maps each id to when): subjects, descriptions, comments (the customer's and the
    agents'), CSAT comments, attachments (their metadata; the files live in the shop's object store,
    which the shop erases), the free text quoted in the tickets' history and the stored answers of
    commands quoting them. Ids, kinds, categories, priorities, root causes, statuses, SLA times and
    scores stay, so the reports do not change. The ids are kept in ``erased_customers``: nothing new
    about them is recorded (``CustomerErased``, a 409). Idempotent. Returns the erased ids."""
    ids = list(erased_at)
    await uow.repo.record_erasures(erased_at)
    await uow.repo.erase_texts(ids)
    return ids


async def customers_merged(uow: Uow, merges: Sequence[Merge]) -> None:
    for merge in merges:
        merge_id = await uow.repo.claim_merge(survivor=merge.survivor, duplicate=merge.duplicate, at=merge.at,
                                              event_id=merge.event_id)
        if merge_id is not None:
            moved = await uow.repo.move_tickets(duplicate=merge.duplicate, survivor=merge.survivor)
            await uow.repo.set_moved(merge_id, moved)


async def customers_unmerged(uow: Uow, unmerges: Sequence[Merge]) -> None:
    for unmerge in unmerges:
        record = await uow.repo.lock_merge_in_force(survivor=unmerge.survivor, duplicate=unmerge.duplicate)
        if record is not None:
            await uow.repo.move_tickets_back(record.moved, survivor=unmerge.survivor, duplicate=unmerge.duplicate)
            await uow.repo.close_merge(record.merge_id, unmerge.at)
