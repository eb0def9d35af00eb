"""The supervisors' report over tickets opened in a period: one pass of SQL per figure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_tickets.usecases.workflow import Uow


def _round(value: Any, places: int = 4) -> float | None:
    return None if value is None else round(float(value), places)


def _pct(part: int, whole: int) -> float | None:
    return _round(100 * part / whole, 2) if whole else None


async def ticket_report(uow: Uow, since: datetime, until: datetime) -> dict[str, Any]:
    complaints = [{"category": r.category, "root_cause": r.root_cause, "tickets": r.n}
                  for r in await uow.repo.complaints_by_category(since, until)]
    sla = await uow.repo.sla_figures(since, until)
    csat_by = {dimension: [
        {dimension: r.key, "responses": r.n, "average": _round(r.average, 2), "satisfied_share": _round(r.satisfied),
         "agent_recorded": r.agent_recorded} for r in await uow.repo.csat_by(dimension, since, until)]
        for dimension in ("agent", "group_id")}
    sla_by = {dimension: [
        {label: r.key, "tickets": r.tickets, "first_response_met_pct": _pct(r.fr_met, r.fr_measured),
         "resolution_met_pct": _pct(r.res_met, r.res_measured), "first_response_measured": r.fr_measured,
         "resolution_measured": r.res_measured} for r in await uow.repo.sla_by(dimension, since, until)]
        for dimension, label in (("assignee", "agent"), ("group_id", "group_id"))}
    backlog = await uow.repo.backlog_by_priority()
    return {
        "since": since.isoformat(), "until": until.isoformat(), "tickets": sla.tickets,
        "complaints_by_category": complaints,
        "sla": {"first_response_met_pct": _pct(sla.fr_met, sla.fr_measured),
                "resolution_met_pct": _pct(sla.res_met, sla.res_measured),
                "first_response_measured": sla.fr_measured, "resolution_measured": sla.res_measured},
        "sla_by_agent": sla_by["assignee"], "sla_by_group": sla_by["group_id"],
        "backlog": {"open": sum(backlog.values()), "by_priority": backlog},
        "avg_first_response_seconds": _round(sla.avg_first_response_s, 1),
        "avg_resolution_seconds": _round(sla.avg_resolution_s, 1),
        "csat_by_agent": csat_by["agent"], "csat_by_group": csat_by["group_id"],
        "reopen_rate": _round(sla.reopened / sla.ever_resolved) if sla.ever_resolved else None,
    }
