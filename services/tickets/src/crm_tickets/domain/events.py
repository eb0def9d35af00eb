"""The integration events the tickets service emits (crm.tickets.*)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_shared.events.envelope import CloudEvent
from crm_shared.tracing import child_traceparent

SOURCE = "crm/tickets"


def ticket_event(verb: str, ticket: Any, at: datetime, traceparent: str | None = None) -> CloudEvent:
    """``crm.tickets.ticket.<verb>`` with the ticket's state after the change (no free text: no PII)."""
    return CloudEvent.new(
        type=f"crm.tickets.ticket.{verb}", source=SOURCE, subject=ticket.customer_id,
        traceparent=child_traceparent(traceparent),
        data={"customer_id": ticket.customer_id, "ticket_id": ticket.ticket_id, "kind": ticket.kind,
              "category": ticket.category, "priority": ticket.priority, "status": ticket.status,
              "group_id": ticket.group_id, "assignee": ticket.assignee, "root_cause": ticket.root_cause,
              "occurred_at": at.isoformat()})


def sla_event(kind: str, target: str, ticket: Any, due_at: datetime, at: datetime) -> CloudEvent:
    """``crm.tickets.ticket.sla_warning`` / ``sla_breached`` for one target of one ticket."""
    return CloudEvent.new(
        type=f"crm.tickets.ticket.{kind}", source=SOURCE, subject=ticket.customer_id,
        data={"customer_id": ticket.customer_id, "ticket_id": ticket.ticket_id, "target": target,
              "due_at": due_at.isoformat(), "priority": ticket.priority, "assignee": ticket.assignee,
              "occurred_at": at.isoformat()})


def csat_submitted(customer_id: str, ticket_id: str, score: int, agent: str | None, group_id: str | None,
                   at: datetime, traceparent: str | None = None, *, recorded_by: str | None = None) -> CloudEvent:
    return CloudEvent.new(
        type="crm.tickets.csat.submitted", source=SOURCE, subject=customer_id,
        traceparent=child_traceparent(traceparent),
        data={"customer_id": customer_id, "ticket_id": ticket_id, "score": score, "agent": agent,
              "group_id": group_id, "submitted_at": at.isoformat(), "recorded_by": recorded_by})
