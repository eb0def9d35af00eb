"""Business metrics of the tickets service, read from the database (as the loyalty service does):
open tickets by priority, SLA breaches, CSAT. A periodic snapshot served at scrape time, so replicas
and retried transactions never count twice."""

from __future__ import annotations

from crm_shared.logging import get_logger
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = get_logger(__name__)

_OPEN = text("""SELECT priority, count(*) AS n FROM tickets WHERE status IN ('new', 'open', 'pending_customer')
                GROUP BY priority""")
_BREACHES = text("""SELECT count(fr_breached_at) AS first_response, count(res_breached_at) AS resolution
                    FROM tickets""")
_CSAT = text("SELECT count(*) AS n, COALESCE(avg(score), 0) AS average FROM csat")


class TicketsMetrics(Collector):
    def __init__(self, registry) -> None:
        self._snapshot: dict | None = None
        registry.register(self)

    async def refresh(self, engine: AsyncEngine) -> None:
        async with engine.connect() as db:
            open_by = {row.priority: row.n for row in await db.execute(_OPEN)}
            breaches = (await db.execute(_BREACHES)).one()
            csat = (await db.execute(_CSAT)).one()
        self._snapshot = {"open": open_by, "breaches": {"first_response": breaches.first_response,
                                                        "resolution": breaches.resolution},
                          "csat_n": csat.n, "csat_avg": float(csat.average)}

    def collect(self):
        snapshot = self._snapshot
        if snapshot is None:
            return
        open_tickets = GaugeMetricFamily("crm_tickets_open", "Tickets not yet resolved, by priority.",
                                         labels=["priority"])
        for priority in ("low", "normal", "high", "urgent"):
            open_tickets.add_metric([priority], snapshot["open"].get(priority, 0))
        yield open_tickets
        breaches = CounterMetricFamily("crm_tickets_sla_breaches", "SLA targets missed.", labels=["target"])
        for target, n in snapshot["breaches"].items():
            breaches.add_metric([target], n)
        yield breaches
        responses = CounterMetricFamily("crm_tickets_csat_responses", "Satisfaction ratings received.")
        responses.add_metric([], snapshot["csat_n"])
        yield responses
        average = GaugeMetricFamily("crm_tickets_csat_average", "Average satisfaction score (1–5).")
        average.add_metric([], snapshot["csat_avg"])
        yield average
