"""HTTP routes of the tickets service. They only translate: parse, check the caller's role, call
one use case (usecases/), map the result to a schema; domain errors become problem+json in
``crm_shared.problems``. ``tickets`` (opening, reading, correcting, attachments), ``workflow``
(status, assignment, conversation, rating), ``admin`` (queues, agents, policy, report, SLA sweep),
``kb`` (standard answers)."""

from crm_tickets.api import admin, kb, tickets, workflow
from crm_tickets.api.common import admin_router, kb_router, router

__all__ = ["admin", "admin_router", "kb", "kb_router", "router", "tickets", "workflow"]
