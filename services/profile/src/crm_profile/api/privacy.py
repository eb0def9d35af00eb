"""Privacy routes: the data export, erasure, and the PII access log."""

from __future__ import annotations

from datetime import UTC, datetime

from crm_shared import idempotency
from crm_shared.auth import CurrentIdentity, Role
from crm_shared.http import current_request_id
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import Problem
from crm_shared.tracing import current_traceparent
from fastapi import Header, Query, Request

from crm_profile.api.common import PROBLEM, SUPERVISOR, CustomerIdPath, ReadUow, Uow, audit_router, resources, router
from crm_profile.api.views import customer_view, read_model
from crm_profile.domain.views import HIDDEN_EXPORT_SECTIONS, customer_timeline
from crm_profile.schemas import ErasureCreate, ErasureRead, PiiAccessPage, PiiAccessRead, ProfileExport
from crm_profile.usecases import privacy


@router.get("/{customer_id}/export", response_model=ProfileExport,
            responses={404: {**PROBLEM, "description": "Unknown customer"},
                       422: {**PROBLEM, "description": "No X-Access-Reason"}})
async def export_profile(request: Request, uow: Uow, identity: CurrentIdentity,
                         customer_id: str = CustomerIdPath,
                         reason: str | None = Header(None, alias="X-Access-Reason", min_length=3, max_length=200)
                         ) -> ProfileExport:
    """All data about a customer as one JSON document (data portability): for the customer
    themselves, or a supervisor with an ``X-Access-Reason``. Journaled as a privacy request.

    The customer's own export leaves out staff's internal notes, the PII access log and the churn
    warnings on the timeline (``notes`` and ``pii_access_log`` are null), and its profile is the
    customer's own view; a supervisor's export has everything."""
    identity.authorize({Role.CUSTOMER, Role.SUPERVISOR}, customer_id=customer_id)
    own = identity.role is Role.CUSTOMER
    if not own and reason is None:
        raise Problem(422, "Invalid request", "an export needs an X-Access-Reason header")
    profile, related = await privacy.export_profile(uow, resources(request).vault, customer_id,
                                                    actor=identity.subject, role=str(identity.role), own=own,
                                                    reason=reason, request_id=current_request_id.get())
    await uow.commit()
    read = read_model(profile, clear=True)
    if own:
        read = customer_view(read)
        related = {**related, "timeline": customer_timeline(related["timeline"]),
                   **dict.fromkeys(HIDDEN_EXPORT_SECTIONS)}
    return ProfileExport(exported_at=datetime.now(UTC), profile=read, **related)


@router.post("/{customer_id}/erasure", status_code=200, response_model=ErasureRead,
             responses={404: {**PROBLEM, "description": "Unknown customer"},
                        409: {**PROBLEM, "description": "A merged duplicate (erase its survivor), or the same key "
                                                        "still in flight"}})
async def erase_profile(body: ErasureCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                        key: IdempotencyKey, customer_id: str = CustomerIdPath) -> ErasureRead:
    """Erase a customer's personal data (supervisors): e-mail, phone, name, address, birthday,
    gender, city, tags, external ids, notes, interaction details and the reasons of points
    movements go; marketing consents are withdrawn; the id, orders and statistics stay,
    anonymised. The profiles merged into this one are erased with it; a merged duplicate itself
    is refused (409, naming the survivor). PII and consents sent for the customer later are
    dropped. ``crm.profile.customer.erased`` tells the other services to erase theirs, once.
    Requires ``Idempotency-Key``; erasing twice is harmless."""
    identity.authorize(SUPERVISOR)
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    erased = await privacy.erase_profile(uow, customer_id, actor=identity.subject, role=str(identity.role),
                                         reason=body.reason, currency=resources(request).rfm_currency,
                                         traceparent=current_traceparent.get())
    answer = ErasureRead(customer_id=customer_id, erased_at=erased.erased_at, erased_by=identity.subject,
                         merged_customer_ids=erased.merged_customer_ids)
    await idempotency.finish(uow, request, identity, key, 200, answer)
    await uow.commit()
    return answer


@audit_router.get("/pii-access", response_model=PiiAccessPage)
async def list_pii_access(uow: ReadUow, identity: CurrentIdentity,
                          customer_id: str | None = Query(None, max_length=100),
                          actor: str | None = Query(None, max_length=200),
                          cursor: int | None = Query(None, ge=1, le=2**63 - 1,
                                                     description="`next_cursor` of the previous page"),
                          limit: int = Query(50, ge=1, le=200)) -> PiiAccessPage:
    """Who saw which customer's PII in clear, when and why, newest first (supervisors)."""
    identity.authorize(SUPERVISOR)
    rows, next_cursor = await privacy.pii_access_page(uow, customer_id=customer_id, actor=actor, before=cursor,
                                                      limit=limit)
    return PiiAccessPage(items=[PiiAccessRead(**row) for row in rows], next_cursor=next_cursor)
