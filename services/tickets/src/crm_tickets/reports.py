"""The supervisors' report over tickets opened in a period: one pass of SQL per figure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_WINDOW = "created_at >= :since AND created_at < :until"


def _round(value: Any, places: int = 4) -> float | None:
    return None if value is None else round(float(value), places)


async def ticket_report(db: AsyncConnection, since: datetime, until: datetime) -> dict[str, Any]:
    params = {"since": since, "until": until}
    complaints = [
        {"category": r.category, "root_cause": r.root_cause, "tickets": r.n}
        for r in await db.execute(text(f"""
            SELECT category, root_cause, count(*) AS n FROM tickets WHERE kind = 'complaint' AND {_WINDOW}
            GROUP BY category, root_cause ORDER BY count(*) DESC, category NULLS LAST, root_cause NULLS LAST"""),
            params)]
    sla = (await db.execute(text(f"""
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
        FROM tickets WHERE {_WINDOW}"""), params)).one()
    csat_by = {}
    for dimension in ("agent", "group_id"):
        csat_by[dimension] = [
            {dimension: r.key, "responses": r.n, "average": _round(r.average, 2),
             "satisfied_share": _round(r.satisfied), "agent_recorded": r.agent_recorded}
            for r in await db.execute(text(f"""
                SELECT c.{dimension} AS key, count(*) AS n, avg(c.score) AS average,
                       avg(CASE WHEN c.score >= 4 THEN 1.0 ELSE 0.0 END) AS satisfied,
                       count(*) FILTER (WHERE c.recorded_by IS NOT NULL) AS agent_recorded
                FROM csat c JOIN tickets t USING (ticket_id)
                WHERE {_WINDOW.replace('created_at', 't.created_at')}
                GROUP BY c.{dimension} ORDER BY c.{dimension} NULLS LAST"""), params)]
    return {
        "since": since.isoformat(), "until": until.isoformat(), "tickets": sla.tickets,
        "complaints_by_category": complaints,
        "sla": {"first_response_met_pct": _round(100 * sla.fr_met / sla.fr_measured, 2) if sla.fr_measured else None,
                "resolution_met_pct": _round(100 * sla.res_met / sla.res_measured, 2) if sla.res_measured else None,
                "first_response_measured": sla.fr_measured, "resolution_measured": sla.res_measured},
        "avg_first_response_seconds": _round(sla.avg_first_response_s, 1),
        "avg_resolution_seconds": _round(sla.avg_resolution_s, 1),
        "csat_by_agent": csat_by["agent"], "csat_by_group": csat_by["group_id"],
        "reopen_rate": _round(sla.reopened / sla.ever_resolved) if sla.ever_resolved else None,
    }
