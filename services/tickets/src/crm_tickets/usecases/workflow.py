"""The ticket workflow: opening with priority and SLA clocks, assignment within queues, status
changes that keep the clocks right, and replies. Every change of a ticket is written with a
history row and, where the outside world should know, an event in the outbox, in the caller's
unit of work."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from crm_shared.errors import CustomerErased, NotFoundError
from crm_shared.uow import UnitOfWork

from crm_tickets.domain.events import ticket_event
from crm_tickets.domain.policy import ACTIVE, TicketsPolicy
from crm_tickets.domain.workflow import (
    follow_up_times,
    load_delta,
    round_robin,
    sla_times,
    transition_changes,
)
from crm_tickets.repository import TicketsRepository
from crm_tickets.usecases.policy import PolicyStore

Uow = UnitOfWork[TicketsRepository]


async def visible_ticket(uow: Uow, ticket_id: str, *, only_customer: str | None = None, lock: bool = False) -> Any:
    """The ticket, if the caller may see it: ``only_customer`` set (a customer) sees only their own
    (else 404, not 403: a customer learns nothing about other people's ticket ids)."""
    row = await uow.repo.load_ticket(ticket_id, lock=lock)
    if row is None or (only_customer is not None and row.customer_id != only_customer):
        raise NotFoundError.of("ticket", ticket_id)
    return row


async def _change_load(uow: Uow, agent: str | None, delta: int) -> None:
    if agent is not None and delta:
        await uow.repo.change_load(agent, delta)


async def pick_agent(uow: Uow, group_id: str) -> str | None:
    """The next available agent of a group: round-robin after the last one, or the one with the
    fewest active tickets. The group is locked so concurrent assignments take turns."""
    group = await uow.repo.lock_group(group_id)
    if group is None:
        return None
    if group.strategy == "least_loaded":
        agent = await uow.repo.least_loaded_agent(group_id)
    else:
        agent = round_robin(await uow.repo.available_agents(group_id), group.last_agent)
    if agent is not None:
        await uow.repo.set_last_agent(group_id, agent)
    return agent


async def open_ticket(uow: Uow, policy: TicketsPolicy, *, fields: dict[str, Any], actor: str, now: datetime,
                      due_within: timedelta | None = None, traceparent: str | None = None) -> Any:
    """Insert a ticket with its priority, SLA clocks and (when an agent is free) its assignee."""
    fields = dict(fields)
    tier, churn_level = await uow.repo.customer_levels(fields["customer_id"])
    priority = fields.pop("priority", None)
    overridden = priority is not None
    priority = priority or policy.priority_for(fields.get("category"), tier, churn_level)
    clocks = sla_times(policy, priority, tier, now) if due_within is None else follow_up_times(policy, now, due_within)
    group_id = fields.pop("group_id", None) or await uow.repo.group_for(fields.get("category"))
    assignee = await pick_agent(uow, group_id) if group_id else None
    ticket_id = f"t-{uuid.uuid4().hex[:16]}"
    row = await uow.repo.insert_ticket({
        **fields, "ticket_id": ticket_id, "priority": priority, "priority_overridden": overridden,
        "status": "open" if assignee else "new", "group_id": group_id, "assignee": assignee, "tier": tier,
        "churn_level": churn_level, "created_by": actor, "created_at": now, **clocks,
        "items": fields.get("items") or []})
    await _change_load(uow, assignee, 1)
    await uow.repo.record_history(ticket_id, actor, "opened", {"priority": priority, "status": row.status,
                                                               "group_id": group_id, "assignee": assignee}, now)
    events = [ticket_event("opened", row, now, traceparent)]
    if assignee:
        events.append(ticket_event("assigned", row, now, traceparent))
    await uow.publish(events)
    return row


async def assign(uow: Uow, ticket: Any, *, agent: str | None, group_id: str | None, actor: str, now: datetime,
                 traceparent: str | None = None) -> Any:
    """Manual (re)assignment to an agent, or automatic within a group when no agent is named."""
    group_id = group_id or ticket.group_id
    agent = agent or (await pick_agent(uow, group_id) if group_id else None)
    values: dict[str, Any] = {"assignee": agent, "group_id": group_id}
    if ticket.status == "new" and agent:
        values["status"] = "open"
    row = await uow.repo.update_ticket(ticket.ticket_id, values)
    if ticket.status in ACTIVE and agent != ticket.assignee:
        await _change_load(uow, ticket.assignee, -1)
        await _change_load(uow, agent, 1)
    await uow.repo.record_history(ticket.ticket_id, actor, "assigned",
                                  {"assignee": [ticket.assignee, agent], "group_id": [ticket.group_id, group_id]}, now)
    if agent:
        await uow.publish([ticket_event("assigned", row, now, traceparent)])
    return row


async def transition(uow: Uow, policy: TicketsPolicy, ticket: Any, target: str, *, actor: str, now: datetime,
                     root_cause: str | None = None, traceparent: str | None = None) -> Any:
    """Move a ticket to ``target`` (``IllegalTransition``, a 409, if not allowed) with its clocks."""
    values, verb = transition_changes(policy, ticket, target, now=now, root_cause=root_cause)
    row = await uow.repo.update_ticket(ticket.ticket_id, values)
    await _change_load(uow, ticket.assignee, load_delta(ticket.status, target))
    await uow.repo.record_history(ticket.ticket_id, actor, "status", {"status": [ticket.status, target],
                                                                       "root_cause": root_cause}, now)
    if verb:
        await uow.publish([ticket_event(verb, row, now, traceparent)])
    return row


async def add_comment(uow: Uow, policy: TicketsPolicy, ticket: Any, *, author: str, staff: bool, public: bool,
                      body: str, article_id: str | None, now: datetime,
                      traceparent: str | None = None) -> tuple[dict[str, Any], Any]:
    """A reply or an internal note. An agent's first public reply is the first response; a
    customer's reply to a ticket pending on them reopens the clock."""
    comment = {"comment_id": f"m-{uuid.uuid4().hex[:16]}", "ticket_id": ticket.ticket_id, "author": author,
               "author_role": "staff" if staff else "customer", "public": public, "body": body,
               "article_id": article_id, "created_at": now}
    await uow.repo.insert_comment(comment)
    row = ticket
    if staff and public and ticket.first_response_at is None:
        row = await uow.repo.update_ticket(ticket.ticket_id, {"first_response_at": now})
        if row.status == "new":
            row = await transition(uow, policy, row, "open", actor=author, now=now, traceparent=traceparent)
    elif not staff and ticket.status == "pending_customer":
        row = await transition(uow, policy, ticket, "open", actor=author, now=now, traceparent=traceparent)
    await uow.repo.record_history(ticket.ticket_id, author, "comment",
                                  {"public": public, "comment_id": comment["comment_id"]}, now)
    return comment, row


# -- the commands ---------------------------------------------------------------------------------

async def change_status(uow: Uow, policies: PolicyStore, *, ticket_id: str, target: str, actor: str, now: datetime,
                        root_cause: str | None = None, traceparent: str | None = None) -> Any:
    _, policy = await policies.current(uow)
    ticket = await visible_ticket(uow, ticket_id, lock=True)
    return await transition(uow, policy, ticket, target, actor=actor, now=now, root_cause=root_cause,
                            traceparent=traceparent)


async def reassign(uow: Uow, *, ticket_id: str, agent_id: str | None, group_id: str | None, actor: str,
                   now: datetime, traceparent: str | None = None) -> Any:
    ticket = await visible_ticket(uow, ticket_id, lock=True)
    if agent_id is not None and not await uow.repo.agent_exists(agent_id):
        raise NotFoundError.of("agent", agent_id)
    return await assign(uow, ticket, agent=agent_id, group_id=group_id, actor=actor, now=now,
                        traceparent=traceparent)


async def refuse_if_erased(uow: Uow, customer_id: str) -> None:
    """Writing about an erased customer would store personal data again: ``CustomerErased``, a 409."""
    if await uow.repo.erased_among([customer_id]):
        raise CustomerErased()


async def comment(uow: Uow, policies: PolicyStore, *, ticket_id: str, only_customer: str | None, author: str,
                  staff: bool, public: bool, body: str, article_id: str | None, now: datetime,
                  traceparent: str | None = None) -> dict[str, Any]:
    _, policy = await policies.current(uow)
    ticket = await visible_ticket(uow, ticket_id, only_customer=only_customer, lock=True)
    await refuse_if_erased(uow, ticket.customer_id)
    saved, _ = await add_comment(uow, policy, ticket, author=author, staff=staff, public=public, body=body,
                                 article_id=article_id, now=now, traceparent=traceparent)
    return saved
