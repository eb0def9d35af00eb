"""The workflow: status changes, assignment, the conversation and the satisfaction rating."""

from __future__ import annotations

from crm_shared import idempotency
from crm_shared.auth import CurrentIdentity, Forbidden, Role
from crm_shared.idempotency import IdempotencyKey
from crm_shared.tracing import current_traceparent
from fastapi import Request

from crm_tickets.api.common import (
    PROBLEM,
    STAFF,
    ReadUow,
    TicketIdPath,
    Uow,
    is_staff,
    now,
    only_customer,
    policies,
    require_read_scope,
    router,
    ticket_read,
)
from crm_tickets.schemas import (
    AssignmentCreate,
    CommentCreate,
    CommentRead,
    CsatCreate,
    CsatRead,
    TicketRead,
    TransitionCreate,
)
from crm_tickets.usecases import tickets, workflow


@router.post("/{ticket_id}/transitions", response_model=TicketRead,
             responses={404: PROBLEM, 409: {**PROBLEM, "description": "Not allowed from the current status"}})
async def change_status(body: TransitionCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                        ticket_id: str = TicketIdPath) -> TicketRead:
    """Move a ticket along new → open → pending customer → resolved → closed, or reopen it within
    the policy's ``reopen_days`` (agents). An illegal move is a 409 problem. Pending customer pauses
    the resolution clock; leaving it resumes the clock with the business time that was left."""
    identity.authorize(STAFF)
    row = await workflow.change_status(uow, policies(request), ticket_id=ticket_id, target=body.status,
                                       actor=identity.subject, now=now(), root_cause=body.root_cause,
                                       traceparent=current_traceparent.get())
    await uow.commit()
    return ticket_read(row)


@router.post("/{ticket_id}/assignment", response_model=TicketRead, responses={404: PROBLEM})
async def reassign(body: AssignmentCreate, uow: Uow, identity: CurrentIdentity,
                   ticket_id: str = TicketIdPath) -> TicketRead:
    """Assign to a named agent, or automatically within the ticket's (or another) group (agents)."""
    identity.authorize(STAFF)
    row = await workflow.reassign(uow, ticket_id=ticket_id, agent_id=body.agent_id, group_id=body.group_id,
                                  actor=identity.subject, now=now(), traceparent=current_traceparent.get())
    await uow.commit()
    return ticket_read(row)


@router.post("/{ticket_id}/comments", status_code=201, response_model=CommentRead,
             responses={404: PROBLEM, 409: PROBLEM, 422: PROBLEM})
async def comment(body: CommentCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                  key: IdempotencyKey, ticket_id: str = TicketIdPath) -> CommentRead:
    """A public reply or an internal note (agents), or the customer's reply. An agent's first public
    reply stops the first-response clock; a customer's reply to a ticket pending on them reopens it.
    Requires ``Idempotency-Key``."""
    identity.authorize(frozenset({Role.CUSTOMER, *STAFF}))
    if not is_staff(identity) and not body.public:
        raise Forbidden("customers cannot write internal notes")
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    saved = await workflow.comment(uow, policies(request), ticket_id=ticket_id, only_customer=only_customer(identity),
                                   author=identity.subject, staff=is_staff(identity), public=body.public,
                                   body=body.body, article_id=body.article_id, now=now(),
                                   traceparent=current_traceparent.get())
    answer = CommentRead(**saved)
    await idempotency.finish(uow, request, identity, key, 201, answer)
    await uow.commit()
    return answer


@router.get("/{ticket_id}/comments", response_model=list[CommentRead], responses={404: PROBLEM})
async def list_comments(uow: ReadUow, identity: CurrentIdentity,
                        ticket_id: str = TicketIdPath) -> list[CommentRead]:
    """The conversation, oldest first; customers never see internal notes."""
    found = await tickets.comments(uow, ticket_id, only_customer=only_customer(identity), staff=is_staff(identity))
    require_read_scope(identity)
    return [CommentRead.model_validate(record) for record in found]


@router.post("/{ticket_id}/csat", status_code=201, response_model=CsatRead,
             responses={404: PROBLEM, 409: {**PROBLEM, "description": "Not resolved yet, or already rated"}})
async def rate(body: CsatCreate, uow: Uow, identity: CurrentIdentity, ticket_id: str = TicketIdPath) -> CsatRead:
    """The customer rates a resolved (or closed) ticket, 1–5 with a comment, once. The agent and
    group at rating time are kept with the score.

    An agent or supervisor may record the answer a customer gave on the phone; the rating is then
    marked as recorded by them (``recorded_by``, from their token), so reports can tell the two apart.
    """
    identity.authorize(frozenset({Role.CUSTOMER, *STAFF}))
    rating = await tickets.rate(uow, ticket_id=ticket_id, only_customer=only_customer(identity), score=body.score,
                                comment=body.comment, recorded_by=identity.subject if is_staff(identity) else None,
                                now=now(), traceparent=current_traceparent.get())
    await uow.commit()
    return CsatRead(**rating)
