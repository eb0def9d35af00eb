"""What every part of the tickets repository shares: the connection of the unit of work."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

TICKET_COLUMNS = """ticket_id, customer_id, order_id, items, kind, channel, category, subcategory, subject,
    description, priority, priority_overridden, status, group_id, assignee, tier, churn_level, root_cause,
    created_by, created_at, first_response_at, resolved_at, closed_at, reopened_count, first_response_due_at,
    first_response_warn_at, resolution_due_at, resolution_warn_at, resolution_left_s, fr_warning_sent_at,
    fr_breached_at, res_warning_sent_at, res_breached_at, updated_at"""


class Bound:
    """Bound to one connection (the unit of work's transaction). Repositories never commit."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
