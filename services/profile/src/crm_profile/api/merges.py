"""Routes of duplicates: the candidates, merging one into a profile, and undoing it."""

from __future__ import annotations

from crm_shared import idempotency
from crm_shared.auth import CurrentIdentity
from crm_shared.idempotency import IdempotencyKey
from crm_shared.tracing import current_traceparent
from fastapi import Request

from crm_profile.api.common import PROBLEM, STAFF, SUPERVISOR, CustomerIdPath, ReadUow, Uow, resources, router
from crm_profile.schemas import DuplicateRead, MergeCreate, MergeRead, UnmergeCreate, UnmergeRead
from crm_profile.usecases import merges


@router.get("/{customer_id}/duplicates", response_model=list[DuplicateRead])
async def list_duplicates(uow: ReadUow, identity: CurrentIdentity,
                          customer_id: str = CustomerIdPath) -> list[DuplicateRead]:
    """Other profiles with the same normalised e-mail or phone (agents and supervisors): merge
    candidates. Junk values are never identifiers, so they never make two profiles look alike."""
    identity.authorize(STAFF)
    return [DuplicateRead(customer_id=other, shared=shared)
            for other, shared in await merges.find_duplicates(uow, customer_id)]


@router.post("/{customer_id}/merge", response_model=MergeRead,
             responses={404: PROBLEM, 409: {**PROBLEM, "description": "Already merged, or key in flight"},
                        422: {**PROBLEM, "description": "Nothing verified in common, erased, or itself"}})
async def merge_profile(body: MergeCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                        key: IdempotencyKey, customer_id: str = CustomerIdPath) -> MergeRead:
    """Merge a duplicate into this profile (supervisors, after verifying the shared identifier with
    the customer). Orders, timeline, notes, consent history, spend and categories move here; fields
    this profile lacks are taken from the duplicate; its consents stay as they are. The merge is
    journaled for review, later events about the duplicate's id apply here, and
    ``crm.profile.customer.merged`` tells the other services."""
    identity.authorize(SUPERVISOR)
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    merged = await merges.merge_profiles(uow, survivor=customer_id, merged=body.duplicate_id,
                                         identifier=body.identifier, reason=body.reason, actor=identity.subject,
                                         currency=resources(request).rfm_currency,
                                         traceparent=current_traceparent.get())
    answer = MergeRead(customer_id=customer_id, merged_customer_id=body.duplicate_id,
                       order_count=merged.order_count, merged_at=merged.merged_at)
    await idempotency.finish(uow, request, identity, key, 200, answer)
    await uow.commit()
    return answer


@router.post("/{customer_id}/unmerge", response_model=UnmergeRead,
             responses={404: {**PROBLEM, "description": "No such merge in force"},
                        409: {**PROBLEM, "description": "This profile was merged since, or key in flight"},
                        422: {**PROBLEM, "description": "Erased, or merged before unmerging existed"}})
async def unmerge_profile(body: UnmergeCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                          key: IdempotencyKey, customer_id: str = CustomerIdPath) -> UnmergeRead:
    """Undo the merge of a duplicate into this profile (supervisors, with a reason): the orders,
    timeline entries, notes, consent history and external ids the merge moved go back, the fields
    this profile took from the duplicate go back, and both profiles' statistics are counted again.
    What reached this profile after the merge stays here. Journaled next to the merge;
    ``crm.profile.customer.unmerged`` tells the other services to move back what they moved.
    Requires ``Idempotency-Key``."""
    identity.authorize(SUPERVISOR)
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    unmerged = await merges.unmerge_profiles(uow, survivor=customer_id, merged=body.duplicate_id,
                                             reason=body.reason, actor=identity.subject,
                                             currency=resources(request).rfm_currency,
                                             traceparent=current_traceparent.get())
    answer = UnmergeRead(customer_id=customer_id, unmerged_customer_id=body.duplicate_id,
                         order_count=unmerged.order_count, unmerged_order_count=unmerged.unmerged_order_count,
                         unmerged_at=unmerged.unmerged_at, unmerged_by=identity.subject)
    await idempotency.finish(uow, request, identity, key, 200, answer)
    await uow.commit()
    return answer
