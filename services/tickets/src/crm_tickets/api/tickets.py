"""Tickets: opening, listing, reading, correcting, their history and attachments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from crm_shared import idempotency
from crm_shared.auth import ALL_ROLES, CurrentIdentity, Forbidden, Role
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import Problem
from crm_shared.tracing import current_traceparent
from fastapi import Query, Request

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
    AttachmentCreate,
    AttachmentRead,
    HistoryRead,
    TicketCreate,
    TicketPage,
    TicketRead,
    TicketUpdate,
)
from crm_tickets.usecases import tickets as usecases


@router.post("", status_code=201, response_model=TicketRead,
             responses={409: {**PROBLEM, "description": "Same key in flight"}, 422: PROBLEM})
async def create_ticket(body: TicketCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                        key: IdempotencyKey) -> TicketRead:
    """Open a ticket (customers for themselves from the web or app; agents from any channel;
    integrations with ``tickets:write``). The priority comes from the category, the customer's tier
    and churn risk unless an agent sets it; the SLA clocks start in business time; the ticket is
    assigned within the queue that handles its category. Requires ``Idempotency-Key``."""
    identity.authorize(ALL_ROLES, scope="tickets:write", customer_id=body.customer_id)
    if body.priority is not None and not is_staff(identity):
        raise Forbidden("only agents may set a priority")
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    fields = body.model_dump(exclude_none=True)
    fields["items"] = [item.model_dump() for item in body.items]
    # Staff opening one for a merged id: the surviving profile's.
    row = await usecases.create_ticket(uow, policies(request), fields=fields, actor=identity.subject, now=now(),
                                       follow_merges=identity.role is not Role.CUSTOMER,
                                       traceparent=current_traceparent.get())
    answer = ticket_read(row, identity)
    await idempotency.finish(uow, request, identity, key, 201, answer)
    await uow.commit()
    return answer


@router.get("", response_model=TicketPage, responses={422: PROBLEM})
async def list_tickets(uow: ReadUow, identity: CurrentIdentity,
                       customer_id: Annotated[str | None, Query(max_length=100)] = None,
                       status: Annotated[str | None, Query(max_length=100, description=(
                           "Comma-separated statuses; 'active' = new, open and pending_customer"))] = None,
                       assignee: Annotated[str | None, Query(max_length=100)] = None,
                       group_id: Annotated[str | None, Query(max_length=100)] = None,
                       priority: Annotated[str | None, Query(max_length=20)] = None,
                       unassigned: Annotated[bool, Query(description="Only tickets without an assignee")] = False,
                       due_before: Annotated[datetime | None, Query(description=(
                           "Only tickets with an SLA clock still to stop (running, or breached and not yet met) "
                           "due before this time: the queue of what breaches soon"))] = None,
                       cursor: Annotated[str | None, Query(max_length=200)] = None,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50) -> TicketPage:
    """Tickets, newest first, filtered; cursor-paginated. Customers see only their own (pass
    their ``customer_id``); agents and supervisors see all; integrations need ``tickets:read``."""
    identity.authorize(ALL_ROLES, scope="tickets:read")
    if identity.role is Role.CUSTOMER:
        if customer_id != identity.customer_id:
            raise Forbidden("a customer may only list their own tickets")
    if due_before is not None and due_before.tzinfo is None:
        raise Problem(422, "Unprocessable Content", "due_before must carry a timezone")
    before = None
    if cursor:
        try:
            at, before_id = cursor.split("|", 1)
            before = (datetime.fromisoformat(at), before_id)
        except ValueError:
            raise Problem(422, "Unprocessable Content", "cursor is not one this API gave out") from None
    rows, after = await usecases.list_tickets(uow, customer_id=customer_id, statuses=usecases.statuses_of(status),
                                              assignee=assignee, group_id=group_id, priority=priority, before=before,
                                              limit=limit, unassigned=unassigned, due_before=due_before)
    items = [ticket_read(row, identity) for row in rows]
    next_cursor = f"{items[-1].created_at.isoformat()}|{items[-1].ticket_id}" if after else None
    return TicketPage(items=items, next_cursor=next_cursor)


@router.get("/{ticket_id}", response_model=TicketRead, responses={404: PROBLEM})
async def get_ticket(uow: ReadUow, identity: CurrentIdentity, ticket_id: str = TicketIdPath) -> TicketRead:
    """One ticket with its SLA state (due times, paused, met or breached)."""
    row = await usecases.visible_ticket(uow, ticket_id, only_customer=only_customer(identity))
    require_read_scope(identity)
    return ticket_read(row, identity)


@router.patch("/{ticket_id}", response_model=TicketRead,
              responses={404: PROBLEM, 409: {**PROBLEM, "description": "A new subject for an erased customer"}})
async def update_ticket(body: TicketUpdate, uow: Uow, identity: CurrentIdentity,
                        ticket_id: str = TicketIdPath) -> TicketRead:
    """Correct category, sub-category, subject or root cause, or override the priority (agents)."""
    identity.authorize(STAFF)
    row = await usecases.update_ticket(uow, ticket_id=ticket_id, changes=body.model_dump(exclude_none=True),
                                       actor=identity.subject, now=now())
    await uow.commit()
    return ticket_read(row)


@router.get("/{ticket_id}/history", response_model=list[HistoryRead], responses={404: PROBLEM})
async def ticket_history(uow: ReadUow, identity: CurrentIdentity,
                         ticket_id: str = TicketIdPath) -> list[HistoryRead]:
    """Who changed what and when (agents and supervisors)."""
    identity.authorize(STAFF)
    return [HistoryRead(**entry) for entry in await usecases.history(uow, ticket_id)]


@router.post("/{ticket_id}/attachments", status_code=201, response_model=AttachmentRead,
             responses={404: PROBLEM, 409: {**PROBLEM, "description": "The customer was erased"}})
async def add_attachment(body: AttachmentCreate, uow: Uow, identity: CurrentIdentity,
                         ticket_id: str = TicketIdPath) -> AttachmentRead:
    """Record an attachment's metadata (the file itself lives in the shop's object store)."""
    identity.authorize(frozenset({Role.CUSTOMER, *STAFF}))
    record = await usecases.add_attachment(uow, ticket_id=ticket_id, only_customer=only_customer(identity),
                                           attachment=body.model_dump(), uploaded_by=identity.subject, now=now())
    await uow.commit()
    return AttachmentRead(**record)


@router.get("/{ticket_id}/attachments", response_model=list[AttachmentRead], responses={404: PROBLEM})
async def list_attachments(uow: ReadUow, identity: CurrentIdentity,
                           ticket_id: str = TicketIdPath) -> list[AttachmentRead]:
    found = await usecases.attachments(uow, ticket_id, only_customer=only_customer(identity))
    require_read_scope(identity)
    return [AttachmentRead.model_validate(record) for record in found]
