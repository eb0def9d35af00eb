"""Tickets in the database: opening, assignment, workflow with SLA clocks, the SLA scan, reports.

Repositories never commit. Every change of a ticket is written with a history row and, where the
outside world should know, an event in the outbox, in the caller's transaction.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
from crm_shared.bus import add_to_outbox
from crm_shared.events.envelope import CloudEvent
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_tickets.domain.events import sla_event, ticket_event
from crm_tickets.domain.policy import ACTIVE, DEFAULT_POLICY, TicketsPolicy, check_transition

TICKET_COLUMNS = """ticket_id, customer_id, order_id, items, kind, channel, category, subcategory, subject,
    description, priority, priority_overridden, status, group_id, assignee, tier, churn_level, root_cause,
    created_by, created_at, first_response_at, resolved_at, closed_at, reopened_count, first_response_due_at,
    first_response_warn_at, resolution_due_at, resolution_warn_at, resolution_left_s, fr_warning_sent_at,
    fr_breached_at, res_warning_sent_at, res_breached_at, updated_at"""


# -- the policy -----------------------------------------------------------------------------------

class PolicyStore:
    """The current policy document, parsed once per version and reused for up to a second.

    A ticket opened within a second of a policy change on another replica may still get the
    previous targets; tickets are never re-timed by a policy change anyway.
    """

    MAX_AGE_S = 1.0

    def __init__(self) -> None:
        self._parsed: tuple[int, TicketsPolicy] | None = None
        self._checked_at = 0.0

    @staticmethod
    async def seed(tx: AsyncConnection) -> None:
        await tx.execute(text("""INSERT INTO policy (version, config, created_by)
                                 VALUES (1, CAST(:config AS jsonb), 'system') ON CONFLICT DO NOTHING"""),
                         {"config": DEFAULT_POLICY.model_dump_json()})

    def forget(self) -> None:
        self._checked_at = 0.0

    async def current(self, tx: AsyncConnection) -> tuple[int, TicketsPolicy]:
        if self._parsed is not None and time.monotonic() - self._checked_at < self.MAX_AGE_S:
            return self._parsed
        version = (await tx.execute(text("SELECT max(version) FROM policy"))).scalar() or 0
        if self._parsed is None or self._parsed[0] != version:
            config = (await tx.execute(text("SELECT config FROM policy WHERE version = :v"), {"v": version})).scalar()
            policy = TicketsPolicy.model_validate(config if isinstance(config, dict) else orjson.loads(config)) \
                if config is not None else DEFAULT_POLICY
            self._parsed = (version, policy)
        self._checked_at = time.monotonic()
        return self._parsed


# -- reading ----------------------------------------------------------------------------------------

async def load_ticket(tx: AsyncConnection, ticket_id: str, *, lock: bool = False) -> Any | None:
    query = f"SELECT {TICKET_COLUMNS} FROM tickets WHERE ticket_id = :id" + (" FOR UPDATE" if lock else "")
    return (await tx.execute(text(query), {"id": ticket_id})).first()


async def record_history(tx: AsyncConnection, ticket_id: str, actor: str, action: str, changes: dict[str, Any],
                         at: datetime) -> None:
    await tx.execute(text("""INSERT INTO ticket_history (ticket_id, actor, action, changes, at)
                             VALUES (:ticket_id, :actor, :action, CAST(:changes AS jsonb), :at)"""),
                     {"ticket_id": ticket_id, "actor": actor, "action": action,
                      "changes": orjson.dumps(changes, default=str).decode(), "at": at})


async def _update(tx: AsyncConnection, ticket_id: str, values: dict[str, Any]) -> Any:
    assignments = ", ".join(f"{column} = :{column}" for column in values)
    return (await tx.execute(text(f"UPDATE tickets SET {assignments}, updated_at = now() WHERE ticket_id = :tid "
                                  f"RETURNING {TICKET_COLUMNS}"), {**values, "tid": ticket_id})).one()


# -- opening and assignment ----------------------------------------------------------------------------

def sla_times(policy: TicketsPolicy, priority: str, tier: str | None, start: datetime) -> dict[str, datetime]:
    target = policy.target(priority, tier)
    calendar, share = policy.calendar, policy.warning_at
    first, resolution = (timedelta(minutes=target.first_response_minutes),
                         timedelta(minutes=target.resolution_minutes))
    return {"first_response_due_at": calendar.add(start, first),
            "first_response_warn_at": calendar.add(start, first * share),
            "resolution_due_at": calendar.add(start, resolution),
            "resolution_warn_at": calendar.add(start, resolution * share)}


async def customer_levels(tx: AsyncConnection, customer_id: str) -> tuple[str | None, str | None]:
    row = (await tx.execute(text("SELECT tier, churn_level FROM customer_levels WHERE customer_id = :c"),
                            {"c": customer_id})).first()
    return (row.tier, row.churn_level) if row else (None, None)


async def pick_agent(tx: AsyncConnection, group_id: str) -> str | None:
    """The next available agent of a group: round-robin after the last one, or the one with the
    fewest active tickets. The group row is locked so concurrent assignments take turns."""
    group = (await tx.execute(text("SELECT strategy, last_agent FROM agent_groups WHERE group_id = :g FOR UPDATE"),
                              {"g": group_id})).first()
    if group is None:
        return None
    if group.strategy == "least_loaded":
        agent = (await tx.execute(text("""
            SELECT agent_id FROM agents WHERE available AND :g = ANY(groups)
            ORDER BY active_tickets, agent_id LIMIT 1"""), {"g": group_id})).scalar()
    else:
        agents = [row[0] for row in await tx.execute(text(
            "SELECT agent_id FROM agents WHERE available AND :g = ANY(groups) ORDER BY agent_id"), {"g": group_id})]
        if not agents:
            return None
        after = [a for a in agents if group.last_agent is not None and a > group.last_agent]
        agent = after[0] if after else agents[0]
    if agent is not None:
        await tx.execute(text("UPDATE agent_groups SET last_agent = :a WHERE group_id = :g"),
                         {"a": agent, "g": group_id})
    return agent


async def change_load(tx: AsyncConnection, agent: str | None, delta: int) -> None:
    """Keep ``agents.active_tickets`` equal to the agent's active tickets (least-loaded reads it)."""
    if agent is not None and delta:
        await tx.execute(text("UPDATE agents SET active_tickets = active_tickets + :d WHERE agent_id = :a"),
                         {"d": delta, "a": agent})


async def group_for(tx: AsyncConnection, category: str | None) -> str | None:
    """The queue whose skills cover the category; else the queue named ``general``, if any."""
    return (await tx.execute(text("""
        SELECT group_id FROM agent_groups
        WHERE CAST(:c AS text) = ANY(skills) OR group_id = 'general'
        ORDER BY (CAST(:c AS text) = ANY(skills)) DESC NULLS LAST, group_id LIMIT 1"""), {"c": category})).scalar()


async def open_ticket(tx: AsyncConnection, policy: TicketsPolicy, *, fields: dict[str, Any], actor: str, now: datetime,
                      due_within: timedelta | None = None, traceparent: str | None = None) -> Any:
    """Insert a ticket with its priority, SLA clocks and (when an agent is free) its assignee."""
    tier, churn_level = await customer_levels(tx, fields["customer_id"])
    priority = fields.pop("priority", None)
    overridden = priority is not None
    priority = priority or policy.priority_for(fields.get("category"), tier, churn_level)
    if due_within is None:
        clocks = sla_times(policy, priority, tier, now)
    else:  # a follow-up task: due within wall-clock hours, not business hours
        warn = now + due_within * policy.warning_at
        clocks = {"first_response_due_at": now + due_within, "first_response_warn_at": warn,
                  "resolution_due_at": now + due_within, "resolution_warn_at": warn}
    group_id = fields.pop("group_id", None) or await group_for(tx, fields.get("category"))
    assignee = await pick_agent(tx, group_id) if group_id else None
    ticket_id = f"t-{uuid.uuid4().hex[:16]}"
    values = {**fields, "ticket_id": ticket_id, "priority": priority, "priority_overridden": overridden,
              "status": "open" if assignee else "new", "group_id": group_id, "assignee": assignee, "tier": tier,
              "churn_level": churn_level, "created_by": actor, "created_at": now, **clocks,
              "items": orjson.dumps(fields.get("items") or []).decode()}
    columns = ", ".join(values)
    placeholders = ", ".join(f"CAST(:{c} AS jsonb)" if c == "items" else f":{c}" for c in values)
    row = (await tx.execute(text(f"INSERT INTO tickets ({columns}) VALUES ({placeholders}) RETURNING {TICKET_COLUMNS}"),
                            values)).one()
    await change_load(tx, assignee, 1)
    await record_history(tx, ticket_id, actor, "opened", {"priority": priority, "status": row.status,
                                                          "group_id": group_id, "assignee": assignee}, now)
    events = [ticket_event("opened", row, now, traceparent)]
    if assignee:
        events.append(ticket_event("assigned", row, now, traceparent))
    await add_to_outbox(tx, events)
    return row


async def assign(tx: AsyncConnection, ticket: Any, *, agent: str | None, group_id: str | None, actor: str,
                 now: datetime, traceparent: str | None = None) -> Any:
    """Manual (re)assignment to an agent, or automatic within a group when no agent is named."""
    group_id = group_id or ticket.group_id
    agent = agent or (await pick_agent(tx, group_id) if group_id else None)
    values: dict[str, Any] = {"assignee": agent, "group_id": group_id}
    if ticket.status == "new" and agent:
        values["status"] = "open"
    row = await _update(tx, ticket.ticket_id, values)
    if ticket.status in ACTIVE and agent != ticket.assignee:
        await change_load(tx, ticket.assignee, -1)
        await change_load(tx, agent, 1)
    await record_history(tx, ticket.ticket_id, actor, "assigned",
                         {"assignee": [ticket.assignee, agent], "group_id": [ticket.group_id, group_id]}, now)
    if agent:
        await add_to_outbox(tx, [ticket_event("assigned", row, now, traceparent)])
    return row


# -- workflow ---------------------------------------------------------------------------------------

async def transition(tx: AsyncConnection, policy: TicketsPolicy, ticket: Any, target: str, *, actor: str,
                     now: datetime, root_cause: str | None = None, traceparent: str | None = None) -> Any:
    """Move a ticket to ``target`` (``IllegalTransition`` if not allowed), keeping the SLA clocks right:
    the resolution clock pauses while pending customer and resumes with the business time it had left."""
    check_transition(ticket.status, target, resolved_at=ticket.resolved_at, now=now, reopen_days=policy.reopen_days)
    values: dict[str, Any] = {"status": target}
    calendar = policy.calendar
    if target == "pending_customer" and ticket.resolution_due_at is not None:
        values.update(resolution_left_s=max(0.0, calendar.between(now, ticket.resolution_due_at).total_seconds()),
                      resolution_due_at=None, resolution_warn_at=None)
    if ticket.status == "pending_customer" and target != "pending_customer" and ticket.resolution_left_s is not None:
        left = timedelta(seconds=ticket.resolution_left_s)
        total = timedelta(minutes=policy.target(ticket.priority, ticket.tier).resolution_minutes)
        warn_left = left - total * (1 - policy.warning_at)
        values.update(resolution_due_at=calendar.add(now, left), resolution_left_s=None,
                      resolution_warn_at=calendar.add(now, warn_left) if warn_left > timedelta(0) else now)
    if target == "resolved":
        values.update(resolved_at=now, root_cause=root_cause or ticket.root_cause)
        if ticket.first_response_at is None:
            values["first_response_at"] = now
    if target == "closed":
        values["closed_at"] = now
    verb = {"resolved": "resolved", "closed": "closed"}.get(target)
    if ticket.status in ("resolved", "closed") and target == "open":
        verb = "reopened"
        values.update(reopened_count=ticket.reopened_count + 1, closed_at=None, resolved_at=None,
                      res_warning_sent_at=None, res_breached_at=None,
                      **{k: v for k, v in sla_times(policy, ticket.priority, ticket.tier, now).items()
                         if k.startswith("resolution")})
    row = await _update(tx, ticket.ticket_id, values)
    await change_load(tx, ticket.assignee, (target in ACTIVE) - (ticket.status in ACTIVE))
    await record_history(tx, ticket.ticket_id, actor, "status", {"status": [ticket.status, target],
                                                                  "root_cause": root_cause}, now)
    if verb:
        await add_to_outbox(tx, [ticket_event(verb, row, now, traceparent)])
    return row


async def add_comment(tx: AsyncConnection, policy: TicketsPolicy, ticket: Any, *, author: str, staff: bool,
                      public: bool, body: str, article_id: str | None, now: datetime,
                      traceparent: str | None = None) -> tuple[dict[str, Any], Any]:
    """A reply or an internal note. An agent's first public reply is the first response; a
    customer's reply to a ticket pending on them reopens the clock."""
    comment = {"comment_id": f"m-{uuid.uuid4().hex[:16]}", "ticket_id": ticket.ticket_id, "author": author,
               "author_role": "staff" if staff else "customer", "public": public, "body": body,
               "article_id": article_id, "created_at": now}
    await tx.execute(text("""INSERT INTO ticket_comments (comment_id, ticket_id, author, author_role, public, body,
                                                          article_id, created_at)
                             VALUES (:comment_id, :ticket_id, :author, :author_role, :public, :body, :article_id,
                                     :created_at)"""), comment)
    row = ticket
    if staff and public and ticket.first_response_at is None:
        row = await _update(tx, ticket.ticket_id, {"first_response_at": now})
        if row.status == "new":
            row = await transition(tx, policy, row, "open", actor=author, now=now, traceparent=traceparent)
    elif not staff and ticket.status == "pending_customer":
        row = await transition(tx, policy, ticket, "open", actor=author, now=now, traceparent=traceparent)
    await record_history(tx, ticket.ticket_id, author, "comment",
                         {"public": public, "comment_id": comment["comment_id"]}, now)
    return comment, row


# -- the SLA scan -------------------------------------------------------------------------------------

# One statement per (kind, target): the conditional UPDATE is what makes each event fire exactly once,
# even with several schedulers: a row already marked is not matched again, and a row another
# scheduler is marking right now is skipped (SKIP LOCKED) or, if reached, re-checked after its commit.
_SCANS = {
    ("sla_warning", "first_response"): ("fr_warning_sent_at", "first_response_warn_at", "first_response_due_at",
                                        "first_response_at IS NULL AND first_response_due_at > :now"),
    ("sla_breached", "first_response"): ("fr_breached_at", "first_response_due_at", "first_response_due_at",
                                         "first_response_at IS NULL"),
    ("sla_warning", "resolution"): ("res_warning_sent_at", "resolution_warn_at", "resolution_due_at",
                                    "resolution_due_at > :now"),
    ("sla_breached", "resolution"): ("res_breached_at", "resolution_due_at", "resolution_due_at", "true"),
}


# The breach counter of the metrics, in the marking transaction: it only goes up, also when a
# reopened ticket clears its breach (migration 0004).
_COUNT_BREACHES = text("""
    INSERT INTO metric_totals (metric, label, value) VALUES ('sla_breaches', :target, :n)
    ON CONFLICT (metric, label) DO UPDATE SET value = metric_totals.value + excluded.value""")


async def scan_sla(tx: AsyncConnection, now: datetime, limit: int) -> tuple[int, bool]:
    """Mark and announce every warning and breach due by ``now`` (at most ``limit`` per kind).
    Returns how many events were queued and whether more may be due."""
    events: list[CloudEvent] = []
    more = False
    for (kind, target), (sent, moment, due, extra) in _SCANS.items():
        rows = list(await tx.execute(text(f"""
            UPDATE tickets SET {sent} = :now
            WHERE ticket_id IN (
                SELECT ticket_id FROM tickets
                WHERE status IN ('new', 'open', 'pending_customer') AND {sent} IS NULL AND {moment} <= :now
                  AND {extra}
                ORDER BY {moment} LIMIT :limit FOR UPDATE SKIP LOCKED)
              AND {sent} IS NULL
            RETURNING ticket_id, customer_id, priority, assignee, {due} AS due_at"""), {"now": now, "limit": limit}))
        more = more or len(rows) == limit
        events += [sla_event(kind, target, row, row.due_at, now) for row in rows]
        if kind == "sla_breached" and rows:
            await tx.execute(_COUNT_BREACHES, {"target": target, "n": len(rows)})
    await add_to_outbox(tx, events)
    return len(events), more


__all__ = [
    "TICKET_COLUMNS",
    "PolicyStore",
    "add_comment",
    "assign",
    "customer_levels",
    "load_ticket",
    "open_ticket",
    "record_history",
    "scan_sla",
    "transition",
]
