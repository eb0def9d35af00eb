"""All SQL of the tickets service, behind one repository bound to the unit of work's connection.

Set-based statements, PostgreSQL-specific where it pays (full-text search, SKIP LOCKED). Split by
concern: tickets and queues (tickets.py), what other services tell about customers (customers.py),
policy, agents and knowledge base (admin.py), reports, the SLA scan and metrics (reports.py).
Repositories never commit.
"""

from __future__ import annotations

from crm_tickets.repository.admin import AdminRows
from crm_tickets.repository.base import TICKET_COLUMNS
from crm_tickets.repository.customers import CustomerRows
from crm_tickets.repository.reports import ReportRows
from crm_tickets.repository.tickets import TicketRows


class TicketsRepository(TicketRows, CustomerRows, AdminRows, ReportRows):
    """The tickets database, on one connection."""


__all__ = ["TICKET_COLUMNS", "TicketsRepository"]
