"""Adjustment requests: an agent asks for an adjustment above their limit, a supervisor approves
(the adjustment is made) or rejects it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from crm_shared import idempotency
from crm_shared.auth import STAFF, SUPERVISOR, CurrentIdentity
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import PROBLEM_RESPONSE as _PROBLEM
from crm_shared.tracing import current_traceparent
from fastapi import APIRouter, Path, Query, Request

from crm_loyalty.api.common import CustomerIdPath, ReadUow, Uow, programme_store
from crm_loyalty.schemas.accounts import (
    AdjustmentCreate,
    AdjustmentDecision,
    AdjustmentRequestPage,
    AdjustmentRequestRead,
)
from crm_loyalty.usecases import adjustment_requests

router = APIRouter(prefix="/v1/loyalty", tags=["loyalty"])
RequestIdPath = Path(min_length=1, max_length=40)


@router.post("/accounts/{customer_id}/adjustment-requests", status_code=201, response_model=AdjustmentRequestRead,
             responses={404: _PROBLEM, 409: _PROBLEM, 422: _PROBLEM})
async def request_adjustment(body: AdjustmentCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                             key: IdempotencyKey, customer_id: str = CustomerIdPath) -> AdjustmentRequestRead:
    """Ask a supervisor for an adjustment above your limit (agents; supervisors may too, for a
    second pair of eyes). Nothing moves until a supervisor approves it. Requires ``Idempotency-Key``."""
    identity.authorize(STAFF)
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    made = await adjustment_requests.request_adjustment(
        uow, programme_store(request), customer_id=customer_id, points=body.points, reason=body.reason,
        ticket_id=body.ticket_id, actor=identity.subject)
    answer = AdjustmentRequestRead(**asdict(made))
    await idempotency.finish(uow, request, identity, key, 201, answer)
    await uow.commit()
    return answer


@router.get("/adjustment-requests", response_model=AdjustmentRequestPage)
async def list_adjustment_requests(
        uow: ReadUow, identity: CurrentIdentity,
        status: Literal["pending", "approved", "rejected", "cancelled"] | None = None,
        customer_id: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        cursor: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20) -> AdjustmentRequestPage:
    """The requests, oldest first (supervisors): ``status=pending`` is the approval queue."""
    identity.authorize(SUPERVISOR)
    page, next_cursor = await adjustment_requests.adjustment_requests(uow, status=status, customer_id=customer_id,
                                                                      cursor=cursor, limit=limit)
    return AdjustmentRequestPage(items=[AdjustmentRequestRead(**asdict(r)) for r in page], next_cursor=next_cursor)


@router.get("/adjustment-requests/{request_id}", response_model=AdjustmentRequestRead, responses={404: _PROBLEM})
async def get_adjustment_request(uow: ReadUow, identity: CurrentIdentity,
                                 request_id: str = RequestIdPath) -> AdjustmentRequestRead:
    """One request and its decision (agents and supervisors)."""
    identity.authorize(STAFF)
    return AdjustmentRequestRead(**asdict(await adjustment_requests.adjustment_request(uow, request_id)))


@router.post("/adjustment-requests/{request_id}/decision", response_model=AdjustmentRequestRead,
             responses={403: {**_PROBLEM, "description": "Your own request"}, 404: _PROBLEM,
                        409: {**_PROBLEM, "description": "Decided the other way already"}, 422: _PROBLEM})
async def decide_adjustment_request(body: AdjustmentDecision, request: Request, uow: Uow, identity: CurrentIdentity,
                                    request_id: str = RequestIdPath) -> AdjustmentRequestRead:
    """Approve (the adjustment is made now, by you, and the ledger entry is linked) or reject a
    pending request (supervisors; never your own). The same decision again answers the request as
    it was decided; a request is applied at most once."""
    identity.authorize(SUPERVISOR)
    decided = await adjustment_requests.decide(uow, programme_store(request), request_id=request_id,
                                               approve=body.approve, note=body.note, actor=identity.subject,
                                               traceparent=current_traceparent.get())
    await uow.commit()
    return AdjustmentRequestRead(**asdict(decided))
