"""Business metrics of the tickets service, read from the database (as the loyalty service does):
open tickets by priority, SLA breaches, CSAT. Database-wide, so one replica exports them
(crm_shared.metrics.DatabaseWideMetrics) and ``sum`` over replicas is the figure itself.

The breach counter is the running total the SLA scan keeps (``metric_totals``), not a count of the
tickets marked now: a reopened ticket clears its breach, and the counter must not go down."""

from __future__ import annotations

from crm_shared.metrics import DatabaseWideMetrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from crm_tickets.repository import TicketsRepository

SLA_TARGETS = ("first_response", "resolution")


class TicketsMetrics(DatabaseWideMetrics):
    async def read(self, db) -> dict:
        return await TicketsRepository(db).metrics_snapshot()

    def families(self, snapshot: dict):
        open_tickets = GaugeMetricFamily("crm_tickets_open", "Tickets not yet resolved, by priority.",
                                         labels=["priority"])
        for priority in ("low", "normal", "high", "urgent"):
            open_tickets.add_metric([priority], snapshot["open"].get(priority, 0))
        yield open_tickets
        breaches = CounterMetricFamily("crm_tickets_sla_breaches", "SLA targets missed (each breach once, "
                                       "also when its ticket is reopened later).", labels=["target"])
        for target in SLA_TARGETS:
            breaches.add_metric([target], snapshot["breaches"].get(target, 0))
        yield breaches
        responses = CounterMetricFamily("crm_tickets_csat_responses", "Satisfaction ratings received.")
        responses.add_metric([], snapshot["csat_n"])
        yield responses
        average = GaugeMetricFamily("crm_tickets_csat_average", "Average satisfaction score (1–5).")
        average.add_metric([], snapshot["csat_avg"])
        yield average
