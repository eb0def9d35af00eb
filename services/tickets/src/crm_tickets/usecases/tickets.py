"""Opening, reading and editing tickets, their attachments and their satisfaction ratings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from crm_shared.errors import RuleViolation

from crm_tickets.domain.events import csat_submitted
from crm_tickets.domain.policy import ACTIVE
from crm_tickets.domain.workflow import AlreadyRated, NotResolved
from crm_tickets.usecases.policy import PolicyStore
from crm_tickets.usecases.workflow import Uow, open_ticket, refuse_if_erased, visible_ticket


async def create_ticket(uow: Uow, policies: PolicyStore, *, fields: dict[str, Any], actor: str, now: datetime,
                        follow_merges: bool, traceparent: str | None = None) -> Any:
    """Open a ticket; ``follow_merges`` (staff) opens it for the surviving profile of a merged id."""
    await refuse_if_erased(uow, fields["customer_id"])
    _, policy = await policies.current(uow)
    if follow_merges:
        customer_id = fields["customer_id"]
        fields = {**fields, "customer_id": (await uow.repo.survivors_of([customer_id])).get(customer_id, customer_id)}
    return await open_ticket(uow, policy, fields=fields, actor=actor, now=now, traceparent=traceparent)


def statuses_of(status: str | None) -> list[str] | None:
    """``status`` of a listing: comma-separated statuses, where ``active`` means all active ones."""
    if not status:
        return None
    return [s for part in status.split(",") for s in (ACTIVE if part == "active" else (part,))]


async def list_tickets(uow: Uow, *, customer_id: str | None, statuses: list[str] | None, assignee: str | None,
                       group_id: str | None, priority: str | None, before: tuple[datetime, str] | None,
                       limit: int, unassigned: bool = False,
                       due_before: datetime | None = None) -> tuple[list[Any], tuple[datetime, str] | None]:
    """Newest first; the page and where the next one starts (None at the end). ``unassigned``: no
    assignee only; ``due_before``: only tickets with a clock still to stop due before then."""
    if unassigned and assignee is not None:
        raise RuleViolation("ask for an assignee or for unassigned tickets, not both", code="unprocessable-content")
    before_at, before_id = before or (datetime.max.replace(tzinfo=UTC), "")
    rows = await uow.repo.list_tickets(customer_id=customer_id, statuses=statuses, assignee=assignee,
                                       group_id=group_id, priority=priority, before_at=before_at,
                                       before_id=before_id or "\uffff", limit=limit + 1, unassigned=unassigned,
                                       due_before=due_before)
    page = rows[:limit]
    return page, (page[-1].created_at, page[-1].ticket_id) if len(rows) > limit else None


async def update_ticket(uow: Uow, *, ticket_id: str, changes: dict[str, Any], actor: str, now: datetime) -> Any:
    """Correct category, sub-category, subject or root cause, or override the priority."""
    ticket = await visible_ticket(uow, ticket_id, lock=True)
    if not changes:
        return ticket
    if "subject" in changes:
        await refuse_if_erased(uow, ticket.customer_id)
    if "priority" in changes:
        changes = {**changes, "priority_overridden": True}
    row = await uow.repo.update_ticket(ticket_id, changes)
    await uow.repo.record_history(ticket_id, actor, "updated", {k: [getattr(ticket, k), v] for k, v in changes.items()},
                                  now)
    return row


async def history(uow: Uow, ticket_id: str) -> list[dict[str, Any]]:
    await visible_ticket(uow, ticket_id)
    return await uow.repo.history(ticket_id)


async def comments(uow: Uow, ticket_id: str, *, only_customer: str | None, staff: bool) -> list[dict[str, Any]]:
    """The conversation, oldest first; internal notes only for staff."""
    await visible_ticket(uow, ticket_id, only_customer=only_customer)
    return await uow.repo.comments(ticket_id, staff=staff)


async def add_attachment(uow: Uow, *, ticket_id: str, only_customer: str | None, attachment: dict[str, Any],
                         uploaded_by: str, now: datetime) -> dict[str, Any]:
    """Record an attachment's metadata (the file itself lives in the shop's object store)."""
    ticket = await visible_ticket(uow, ticket_id, only_customer=only_customer)
    await refuse_if_erased(uow, ticket.customer_id)
    record = {**attachment, "attachment_id": f"a-{uuid.uuid4().hex[:16]}", "ticket_id": ticket_id,
              "uploaded_by": uploaded_by, "created_at": now}
    await uow.repo.insert_attachment(record)
    await uow.repo.record_history(ticket_id, uploaded_by, "attachment", {"filename": attachment["filename"]}, now)
    return record


async def attachments(uow: Uow, ticket_id: str, *, only_customer: str | None) -> list[dict[str, Any]]:
    await visible_ticket(uow, ticket_id, only_customer=only_customer)
    return await uow.repo.attachments(ticket_id)


async def rate(uow: Uow, *, ticket_id: str, only_customer: str | None, score: int, comment: str | None,
               recorded_by: str | None, now: datetime, traceparent: str | None = None) -> dict[str, Any]:
    """A resolved (or closed) ticket is rated once, 1–5; the agent and group at rating time are kept.
    ``recorded_by`` is the agent who took the customer's answer on the phone (None: the customer)."""
    ticket = await visible_ticket(uow, ticket_id, only_customer=only_customer, lock=True)
    await refuse_if_erased(uow, ticket.customer_id)
    if ticket.status not in ("resolved", "closed"):
        raise NotResolved("a ticket can be rated once it is resolved")
    if not await uow.repo.insert_csat(ticket_id=ticket_id, customer_id=ticket.customer_id, score=score,
                                      comment=comment, agent=ticket.assignee, group_id=ticket.group_id, at=now,
                                      recorded_by=recorded_by):
        raise AlreadyRated("this ticket was already rated")
    await uow.publish([csat_submitted(ticket.customer_id, ticket_id, score, ticket.assignee, ticket.group_id, now,
                                      traceparent, recorded_by=recorded_by)])
    return {"ticket_id": ticket_id, "score": score, "comment": comment, "agent": ticket.assignee,
            "group_id": ticket.group_id, "submitted_at": now, "recorded_by": recorded_by}
