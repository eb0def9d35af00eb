"""Metrics of the campaigns service.

Database-wide, exported by one replica only (crm_shared.metrics.DatabaseWideMetrics): messages by
channel and status, contacts waiting, campaigns by status. Per process, on every replica: delivery
attempts by channel and outcome, and the time from a triggering event to its message being sent."""

from __future__ import annotations

from collections import Counter

from crm_shared.metrics import DatabaseWideMetrics, ExporterElection
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from crm_campaigns.repository import CampaignsRepository


class CampaignsMetrics(DatabaseWideMetrics):
    def __init__(self, registry, election: ExporterElection) -> None:
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.trigger_latency = Histogram(
            "crm_campaigns_trigger_latency", "From a triggering event to its message accepted by the channel.",
            unit="seconds", buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=registry)
        super().__init__(registry, election)

    def attempted(self, channel: str, outcome: str) -> None:
        self.attempts[(channel, outcome)] += 1

    async def read(self, db) -> dict:
        return await CampaignsRepository(db).metrics_snapshot()

    def process_families(self):
        attempts = CounterMetricFamily("crm_campaigns_delivery_attempts", "Delivery attempts by this process, by "
                                       "channel and outcome (sent, retry, bounced, failed).",
                                       labels=["channel", "outcome"])
        for (channel, outcome), count in sorted(self.attempts.items()):
            attempts.add_metric([channel, outcome], count)
        yield attempts

    def families(self, snapshot: dict):
        messages = GaugeMetricFamily("crm_campaigns_messages", "Messages by channel and status.",
                                     labels=["channel", "status"])
        for (channel, status), count in sorted(snapshot["messages"].items()):
            messages.add_metric([channel, status], count)
        yield messages
        pending = GaugeMetricFamily("crm_campaigns_contacts_pending", "Contacts waiting to be handled (due or not).")
        pending.add_metric([], snapshot["pending"])
        yield pending
        campaigns = GaugeMetricFamily("crm_campaigns_campaigns", "Campaigns by status.", labels=["status"])
        for status, count in sorted(snapshot["campaigns"].items()):
            campaigns.add_metric([status], count)
        yield campaigns
