"""The ticket workflow's rules: SLA clocks, what a status change does to them, assignment turns,
and the refusals of the workflow. Pure: the use cases read and write through the repository."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from crm_shared.errors import ConflictError

from crm_tickets.domain.policy import ACTIVE, TicketsPolicy, check_transition


class NotResolved(ConflictError):
    default_code = "not-resolved"


class AlreadyRated(ConflictError):
    default_code = "already-rated"


def sla_times(policy: TicketsPolicy, priority: str, tier: str | None, start: datetime) -> dict[str, datetime]:
    """Due and warning moments of both targets, in business time from ``start``."""
    target = policy.target(priority, tier)
    calendar, share = policy.calendar, policy.warning_at
    first, resolution = (timedelta(minutes=target.first_response_minutes),
                         timedelta(minutes=target.resolution_minutes))
    return {"first_response_due_at": calendar.add(start, first),
            "first_response_warn_at": calendar.add(start, first * share),
            "resolution_due_at": calendar.add(start, resolution),
            "resolution_warn_at": calendar.add(start, resolution * share)}


def follow_up_times(policy: TicketsPolicy, now: datetime, due_within: timedelta) -> dict[str, datetime]:
    """A follow-up task: due within wall-clock hours, not business hours."""
    warn = now + due_within * policy.warning_at
    return {"first_response_due_at": now + due_within, "first_response_warn_at": warn,
            "resolution_due_at": now + due_within, "resolution_warn_at": warn}


def round_robin(agents: list[str], last_agent: str | None) -> str | None:
    """The next agent after the last one (sorted ids), wrapping round."""
    if not agents:
        return None
    after = [a for a in agents if last_agent is not None and a > last_agent]
    return after[0] if after else agents[0]


def transition_changes(policy: TicketsPolicy, ticket: Any, target: str, *, now: datetime,
                       root_cause: str | None) -> tuple[dict[str, Any], str | None]:
    """The column changes of moving ``ticket`` to ``target`` (``IllegalTransition`` if not allowed),
    and the event verb to announce, if any. The resolution clock pauses while pending customer and
    resumes with the business time it had left; a reopened ticket gets a new resolution clock."""
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
    return values, verb


def load_delta(before: str, after: str) -> int:
    """How an agent's count of active tickets changes with a status change."""
    return (after in ACTIVE) - (before in ACTIVE)


def clock_state(due: datetime | None, breached: datetime | None, done_at: datetime | None,
                paused_left: float | None, stopped: bool) -> str:
    """An SLA clock as a person reads it: met, breached, paused, stopped or running."""
    if done_at is not None:
        return "breached" if breached or (due is not None and done_at > due) else "met"
    if breached is not None:
        return "breached"
    if paused_left is not None:
        return "paused"
    return "stopped" if stopped else "running"


# The SLA scan's marks, in the order they are made: each (kind, target) fires once per ticket.
SLA_MARKS: tuple[tuple[str, str], ...] = (("sla_warning", "first_response"), ("sla_breached", "first_response"),
                                          ("sla_warning", "resolution"), ("sla_breached", "resolution"))
