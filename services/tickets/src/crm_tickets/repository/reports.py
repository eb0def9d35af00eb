"""The supervisors' report, the SLA scan's marking statements, and the metrics' snapshot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text

from crm_tickets.repository.base import Bound

_WINDOW = "created_at >= :since AND created_at < :until"
_COMPLAINTS = text(f"""
    SELECT category, root_cause, count(*) AS n FROM tickets WHERE kind = 'complaint' AND {_WINDOW}
    GROUP BY category, root_cause ORDER BY count(*) DESC, category NULLS LAST, root_cause NULLS LAST""")
_SLA = text(f"""
    SELECT count(*) AS tickets,
           count(*) FILTER (WHERE first_response_at IS NOT NULL OR fr_breached_at IS NOT NULL) AS fr_measured,
           count(*) FILTER (WHERE first_response_at IS NOT NULL AND fr_breached_at IS NULL
                            AND first_response_at <= first_response_due_at) AS fr_met,
           count(*) FILTER (WHERE resolved_at IS NOT NULL OR res_breached_at IS NOT NULL) AS res_measured,
           count(*) FILTER (WHERE resolved_at IS NOT NULL AND res_breached_at IS NULL
                            AND (resolution_due_at IS NULL OR resolved_at <= resolution_due_at)) AS res_met,
           avg(extract(epoch FROM first_response_at - created_at)) AS avg_first_response_s,
           avg(extract(epoch FROM resolved_at - created_at)) AS avg_resolution_s,
           count(*) FILTER (WHERE reopened_count > 0) AS reopened,
           count(*) FILTER (WHERE resolved_at IS NOT NULL OR reopened_count > 0) AS ever_resolved
    FROM tickets WHERE {_WINDOW}""")
# The same SLA figures per assignee (agent) and per group (team): the first response is the
# assignee's or the group's, as the ticket stands now (a ticket moved to another agent counts for them).
_SLA_BY = {dimension: text(f"""
    SELECT {dimension} AS key, count(*) AS tickets,
           count(*) FILTER (WHERE first_response_at IS NOT NULL OR fr_breached_at IS NOT NULL) AS fr_measured,
           count(*) FILTER (WHERE first_response_at IS NOT NULL AND fr_breached_at IS NULL
                            AND first_response_at <= first_response_due_at) AS fr_met,
           count(*) FILTER (WHERE resolved_at IS NOT NULL OR res_breached_at IS NOT NULL) AS res_measured,
           count(*) FILTER (WHERE resolved_at IS NOT NULL AND res_breached_at IS NULL
                            AND (resolution_due_at IS NULL OR resolved_at <= resolution_due_at)) AS res_met
    FROM tickets WHERE {_WINDOW}
    GROUP BY {dimension} ORDER BY {dimension} NULLS LAST""") for dimension in ("assignee", "group_id")}
_CSAT_BY = {dimension: text(f"""
    SELECT c.{dimension} AS key, count(*) AS n, avg(c.score) AS average,
           avg(CASE WHEN c.score >= 4 THEN 1.0 ELSE 0.0 END) AS satisfied,
           count(*) FILTER (WHERE c.recorded_by IS NOT NULL) AS agent_recorded
    FROM csat c JOIN tickets t USING (ticket_id)
    WHERE {_WINDOW.replace('created_at', 't.created_at')}
    GROUP BY c.{dimension} ORDER BY c.{dimension} NULLS LAST""") for dimension in ("agent", "group_id")}

# One statement per (kind, target): the conditional UPDATE is what makes each event fire exactly once,
# even with several schedulers: a row already marked is not matched again, and a row another
# scheduler is marking right now is skipped (SKIP LOCKED) or, if reached, re-checked after its commit.
_MARKS = {
    ("sla_warning", "first_response"): ("fr_warning_sent_at", "first_response_warn_at", "first_response_due_at",
                                        "first_response_at IS NULL AND first_response_due_at > :now"),
    ("sla_breached", "first_response"): ("fr_breached_at", "first_response_due_at", "first_response_due_at",
                                         "first_response_at IS NULL"),
    ("sla_warning", "resolution"): ("res_warning_sent_at", "resolution_warn_at", "resolution_due_at",
                                    "resolution_due_at > :now"),
    ("sla_breached", "resolution"): ("res_breached_at", "resolution_due_at", "resolution_due_at", "true"),
}
_MARK = {key: text(f"""
    UPDATE tickets SET {sent} = :now
    WHERE ticket_id IN (
        SELECT ticket_id FROM tickets
        WHERE status IN ('new', 'open', 'pending_customer') AND {sent} IS NULL AND {moment} <= :now
          AND {extra}
        ORDER BY {moment} LIMIT :limit FOR UPDATE SKIP LOCKED)
      AND {sent} IS NULL
    RETURNING ticket_id, customer_id, priority, assignee, {due} AS due_at""")
    for key, (sent, moment, due, extra) in _MARKS.items()}
# The breach counter of the metrics, in the marking transaction: it only goes up, also when a
# reopened ticket clears its breach (migration 0006).
_COUNT_BREACHES = text("""
    INSERT INTO metric_totals (metric, label, value) VALUES ('sla_breaches', :target, :n)
    ON CONFLICT (metric, label) DO UPDATE SET value = metric_totals.value + excluded.value""")

_OPEN = text("""SELECT priority, count(*) AS n FROM tickets WHERE status IN ('new', 'open', 'pending_customer')
                GROUP BY priority""")
_BREACHES = text("SELECT label AS target, value FROM metric_totals WHERE metric = 'sla_breaches'")
# CSAT rows are only ever inserted (one per ticket; erasure clears the comment, never the row).
_CSAT = text("SELECT count(*) AS n, COALESCE(avg(score), 0) AS average FROM csat")


class ReportRows(Bound):
    async def complaints_by_category(self, since: datetime, until: datetime) -> list[Any]:
        return list(await self.connection.execute(_COMPLAINTS, {"since": since, "until": until}))

    async def sla_figures(self, since: datetime, until: datetime) -> Any:
        return (await self.connection.execute(_SLA, {"since": since, "until": until})).one()

    async def sla_by(self, dimension: str, since: datetime, until: datetime) -> list[Any]:
        """SLA figures of tickets opened in the window, by ``assignee`` or ``group_id``."""
        return list(await self.connection.execute(_SLA_BY[dimension], {"since": since, "until": until}))

    async def backlog_by_priority(self) -> dict[str, int]:
        """Tickets not resolved or closed now, by priority (whenever they were opened)."""
        return {row.priority: row.n for row in await self.connection.execute(_OPEN)}

    async def csat_by(self, dimension: str, since: datetime, until: datetime) -> list[Any]:
        """Ratings of tickets opened in the window, by ``agent`` or ``group_id``."""
        return list(await self.connection.execute(_CSAT_BY[dimension], {"since": since, "until": until}))

    # -- the SLA scan -------------------------------------------------------------------------------

    async def mark_sla(self, kind: str, target: str, now: datetime, limit: int) -> list[Any]:
        """Mark up to ``limit`` tickets whose ``kind`` (sla_warning, sla_breached) of ``target`` is due by
        ``now`` and not yet marked; the marked ones (ticket_id, customer_id, priority, assignee, due_at)."""
        return list(await self.connection.execute(_MARK[(kind, target)], {"now": now, "limit": limit}))

    async def count_breaches(self, target: str, n: int) -> None:
        await self.connection.execute(_COUNT_BREACHES, {"target": target, "n": n})

    # -- metrics ------------------------------------------------------------------------------------

    async def metrics_snapshot(self) -> dict[str, Any]:
        open_by = {row.priority: row.n for row in await self.connection.execute(_OPEN)}
        breaches = {row.target: row.value for row in await self.connection.execute(_BREACHES)}
        csat = (await self.connection.execute(_CSAT)).one()
        return {"open": open_by, "breaches": breaches, "csat_n": csat.n, "csat_avg": float(csat.average)}
