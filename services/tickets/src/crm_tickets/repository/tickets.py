"""Tickets, their history, comments, attachments and ratings, and the queues they are assigned in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from crm_shared.erasure import erased_among
from crm_shared.merges import survivors_of
from sqlalchemy import text

from crm_tickets.repository.base import TICKET_COLUMNS, Bound

_LIST = text(f"""
    SELECT {TICKET_COLUMNS} FROM tickets
    WHERE (CAST(:customer_id AS text) IS NULL OR customer_id = :customer_id)
      AND (CAST(:statuses AS text[]) IS NULL OR status = ANY(CAST(:statuses AS text[])))
      AND (CAST(:assignee AS text) IS NULL OR assignee = :assignee)
      AND (CAST(:group_id AS text) IS NULL OR group_id = :group_id)
      AND (CAST(:priority AS text) IS NULL OR priority = :priority)
      AND (NOT :unassigned OR assignee IS NULL)
      -- A clock still to stop (running, or breached and not yet met) that is due before the time:
      -- the first response until it is given, the resolution until it is reached, unless paused.
      AND (CAST(:due_before AS timestamptz) IS NULL OR (status IN ('new', 'open', 'pending_customer') AND (
           (first_response_at IS NULL AND first_response_due_at < :due_before)
           OR (resolved_at IS NULL AND resolution_left_s IS NULL AND resolution_due_at < :due_before))))
      AND (created_at, ticket_id) < (:before_at, :before_id)
    ORDER BY created_at DESC, ticket_id DESC LIMIT :limit""")
_INSERT_COMMENT = text("""
    INSERT INTO ticket_comments (comment_id, ticket_id, author, author_role, public, body, article_id, created_at)
    VALUES (:comment_id, :ticket_id, :author, :author_role, :public, :body, :article_id, :created_at)""")
_COMMENTS = text("""
    SELECT comment_id, ticket_id, author, author_role, public, body, article_id, created_at FROM ticket_comments
    WHERE ticket_id = :t AND (public OR :staff) ORDER BY created_at, comment_id""")
_INSERT_ATTACHMENT = text("""
    INSERT INTO ticket_attachments (attachment_id, ticket_id, filename, content_type, size_bytes, url, uploaded_by,
                                    created_at)
    VALUES (:attachment_id, :ticket_id, :filename, :content_type, :size_bytes, :url, :uploaded_by, :created_at)""")
_INSERT_CSAT = text("""
    INSERT INTO csat (ticket_id, customer_id, score, comment, agent, group_id, submitted_at, recorded_by)
    VALUES (:t, :c, :score, :comment, :agent, :group_id, :at, :recorded_by) ON CONFLICT (ticket_id) DO NOTHING
    RETURNING ticket_id""")


class TicketRows(Bound):
    # -- tickets ------------------------------------------------------------------------------------

    async def load_ticket(self, ticket_id: str, *, lock: bool = False) -> Any | None:
        query = f"SELECT {TICKET_COLUMNS} FROM tickets WHERE ticket_id = :id" + (" FOR UPDATE" if lock else "")
        return (await self.connection.execute(text(query), {"id": ticket_id})).first()

    async def insert_ticket(self, values: dict[str, Any]) -> Any:
        values = {**values, "items": orjson.dumps(values.get("items") or []).decode()}
        columns = ", ".join(values)
        placeholders = ", ".join(f"CAST(:{c} AS jsonb)" if c == "items" else f":{c}" for c in values)
        return (await self.connection.execute(text(
            f"INSERT INTO tickets ({columns}) VALUES ({placeholders}) RETURNING {TICKET_COLUMNS}"), values)).one()

    async def update_ticket(self, ticket_id: str, values: dict[str, Any]) -> Any:
        assignments = ", ".join(f"{column} = :{column}" for column in values)
        return (await self.connection.execute(text(
            f"UPDATE tickets SET {assignments}, updated_at = now() WHERE ticket_id = :tid "
            f"RETURNING {TICKET_COLUMNS}"), {**values, "tid": ticket_id})).one()

    async def list_tickets(self, *, customer_id: str | None, statuses: list[str] | None, assignee: str | None,
                           group_id: str | None, priority: str | None, before_at: datetime, before_id: str,
                           limit: int, unassigned: bool = False, due_before: datetime | None = None) -> list[Any]:
        return list(await self.connection.execute(_LIST, {
            "customer_id": customer_id, "statuses": statuses, "assignee": assignee, "group_id": group_id,
            "priority": priority, "before_at": before_at, "before_id": before_id, "limit": limit,
            "unassigned": unassigned, "due_before": due_before}))

    async def record_history(self, ticket_id: str, actor: str, action: str, changes: dict[str, Any],
                             at: datetime) -> None:
        await self.connection.execute(text("""
            INSERT INTO ticket_history (ticket_id, actor, action, changes, at)
            VALUES (:ticket_id, :actor, :action, CAST(:changes AS jsonb), :at)"""), {
            "ticket_id": ticket_id, "actor": actor, "action": action,
            "changes": orjson.dumps(changes, default=str).decode(), "at": at})

    async def history(self, ticket_id: str) -> list[dict[str, Any]]:
        rows = await self.connection.execute(text(
            "SELECT actor, action, changes, at FROM ticket_history WHERE ticket_id = :t ORDER BY id"),
            {"t": ticket_id})
        return [{"actor": r.actor, "action": r.action, "at": r.at,
                 "changes": r.changes if isinstance(r.changes, dict) else orjson.loads(r.changes)} for r in rows]

    # -- who the customer is -------------------------------------------------------------------------

    async def customer_levels(self, customer_id: str) -> tuple[str | None, str | None]:
        row = (await self.connection.execute(text(
            "SELECT tier, churn_level FROM customer_levels WHERE customer_id = :c"), {"c": customer_id})).first()
        return (row.tier, row.churn_level) if row else (None, None)

    async def erased_among(self, customer_ids: list[str]) -> set[str]:
        return await erased_among(self.connection, customer_ids)

    async def survivors_of(self, customer_ids: list[str]) -> dict[str, str]:
        return await survivors_of(self.connection, customer_ids)

    # -- queues and agents --------------------------------------------------------------------------

    async def group_for(self, category: str | None) -> str | None:
        """The queue whose skills cover the category; else the queue named ``general``, if any."""
        return (await self.connection.execute(text("""
            SELECT group_id FROM agent_groups
            WHERE CAST(:c AS text) = ANY(skills) OR group_id = 'general'
            ORDER BY (CAST(:c AS text) = ANY(skills)) DESC NULLS LAST, group_id LIMIT 1"""),
            {"c": category})).scalar()

    async def lock_group(self, group_id: str) -> Any | None:
        """The group's strategy and round-robin cursor, locked so concurrent assignments take turns."""
        return (await self.connection.execute(text(
            "SELECT strategy, last_agent FROM agent_groups WHERE group_id = :g FOR UPDATE"), {"g": group_id})).first()

    async def least_loaded_agent(self, group_id: str) -> str | None:
        return (await self.connection.execute(text("""
            SELECT agent_id FROM agents WHERE available AND :g = ANY(groups)
            ORDER BY active_tickets, agent_id LIMIT 1"""), {"g": group_id})).scalar()

    async def available_agents(self, group_id: str) -> list[str]:
        return [row[0] for row in await self.connection.execute(text(
            "SELECT agent_id FROM agents WHERE available AND :g = ANY(groups) ORDER BY agent_id"), {"g": group_id})]

    async def set_last_agent(self, group_id: str, agent: str) -> None:
        await self.connection.execute(text("UPDATE agent_groups SET last_agent = :a WHERE group_id = :g"),
                                      {"a": agent, "g": group_id})

    async def change_load(self, agent: str, delta: int) -> None:
        """Keep ``agents.active_tickets`` equal to the agent's active tickets (least-loaded reads it)."""
        await self.connection.execute(text(
            "UPDATE agents SET active_tickets = active_tickets + :d WHERE agent_id = :a"), {"d": delta, "a": agent})

    async def agent_exists(self, agent_id: str) -> bool:
        return (await self.connection.execute(text("SELECT 1 FROM agents WHERE agent_id = :a"),
                                              {"a": agent_id})).first() is not None

    # -- comments, attachments, ratings -------------------------------------------------------------

    async def insert_comment(self, comment: dict[str, Any]) -> None:
        await self.connection.execute(_INSERT_COMMENT, comment)

    async def comments(self, ticket_id: str, *, staff: bool) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in await self.connection.execute(_COMMENTS, {"t": ticket_id, "staff": staff})]

    async def insert_attachment(self, record: dict[str, Any]) -> None:
        await self.connection.execute(_INSERT_ATTACHMENT, record)

    async def attachments(self, ticket_id: str) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in await self.connection.execute(text(
            "SELECT * FROM ticket_attachments WHERE ticket_id = :t ORDER BY created_at"), {"t": ticket_id})]

    async def insert_csat(self, *, ticket_id: str, customer_id: str, score: int, comment: str | None,
                          agent: str | None, group_id: str | None, at: datetime, recorded_by: str | None) -> bool:
        """Store the rating; False when the ticket was already rated."""
        return (await self.connection.execute(_INSERT_CSAT, {
            "t": ticket_id, "c": customer_id, "score": score, "comment": comment, "agent": agent,
            "group_id": group_id, "at": at, "recorded_by": recorded_by})).first() is not None
