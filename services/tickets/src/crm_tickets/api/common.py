"""What the tickets routes share: the routers, roles, units of work, and the ticket's view."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from crm_shared.auth import ALL_ROLES, STAFF, SUPERVISOR, Identity, Role  # noqa: F401  (SUPERVISOR: for the routes)
from crm_shared.problems import PROBLEM_RESPONSE as PROBLEM  # noqa: F401  (for the route modules)
from crm_shared.uow import uow_dependency
from fastapi import APIRouter, Path, Request

from crm_tickets.domain.policy import ACTIVE
from crm_tickets.domain.workflow import clock_state
from crm_tickets.repository import TicketsRepository
from crm_tickets.schemas import SlaClock, TicketRead
from crm_tickets.usecases.policy import PolicyStore

router = APIRouter(prefix="/v1/tickets", tags=["tickets"])
admin_router = APIRouter(prefix="/v1/ticketing", tags=["tickets: queues, policy, reports"])
kb_router = APIRouter(prefix="/v1/kb", tags=["knowledge base"])

Uow = uow_dependency(TicketsRepository)
ReadUow = uow_dependency(TicketsRepository, read_only=True)

TicketIdPath = Path(min_length=1, max_length=100)


def policies(request: Request) -> PolicyStore:
    return request.app.state.resources.policy


def now() -> datetime:
    return datetime.now(UTC)


def is_staff(identity: Identity) -> bool:
    return identity.role in STAFF


def only_customer(identity: Identity) -> str | None:
    """Whose tickets the caller is limited to: a customer sees only their own, staff any."""
    return (identity.customer_id or "") if identity.role is Role.CUSTOMER else None


def require_read_scope(identity: Identity) -> None:
    """An integration reading a ticket it found needs ``tickets:read``."""
    if identity.role is Role.SERVICE:
        identity.authorize(ALL_ROLES, scope="tickets:read")


def _clock(due: datetime | None, warn_sent: datetime | None, breached: datetime | None, done_at: datetime | None,
           paused_left: float | None, stopped: bool) -> SlaClock:
    return SlaClock(due_at=due, state=clock_state(due, breached, done_at, paused_left, stopped),
                    warning_sent=warn_sent is not None, breached=breached is not None,
                    left_minutes=round(paused_left / 60, 1) if paused_left is not None else None)


def ticket_read(row: Any, identity: Identity | None = None) -> TicketRead:
    """The ticket as ``identity`` may see it: a customer's own ticket leaves out the churn level the
    priority was set from (the shop's view of the customer, not theirs)."""
    items = row.items if isinstance(row.items, list) else orjson.loads(row.items)
    customer_view = identity is not None and identity.role is Role.CUSTOMER
    return TicketRead(
        ticket_id=row.ticket_id, customer_id=row.customer_id, kind=row.kind, channel=row.channel, subject=row.subject,
        description=row.description, category=row.category, subcategory=row.subcategory, order_id=row.order_id,
        items=items, priority=row.priority, priority_overridden=row.priority_overridden, status=row.status,
        group_id=row.group_id, assignee=row.assignee, tier=row.tier,
        churn_level=None if customer_view else row.churn_level,
        root_cause=row.root_cause, created_by=row.created_by, created_at=row.created_at,
        first_response_at=row.first_response_at, resolved_at=row.resolved_at, closed_at=row.closed_at,
        reopened_count=row.reopened_count,
        sla={"first_response": _clock(row.first_response_due_at, row.fr_warning_sent_at, row.fr_breached_at,
                                      row.first_response_at, None, row.status not in ACTIVE),
             "resolution": _clock(row.resolution_due_at, row.res_warning_sent_at, row.res_breached_at,
                                  row.resolved_at, row.resolution_left_s, row.status not in ACTIVE)})
