"""Metrics of the profile service: customers in the archive and members per segment, read from the
database, so one replica exports them (crm_shared.metrics.DatabaseWideMetrics) and ``sum`` over
replicas is the figure itself. A deleted segment's series goes with it. Per process: how long the
segment refreshes this process ran took."""

from __future__ import annotations

from crm_shared.metrics import DatabaseWideMetrics, ExporterElection
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily

from crm_profile.repository.segments import SegmentRepository


class ProfileMetrics(DatabaseWideMetrics):
    def __init__(self, registry, election: ExporterElection) -> None:
        self.refresh_duration = Histogram("crm_profile_segment_refresh_seconds",
                                          "RFM and custom segments recomputed for the whole base.",
                                          registry=registry, buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        super().__init__(registry, election)

    async def read(self, db) -> dict:
        repo = SegmentRepository(db)
        return {"customers": await repo.customer_count(), "segments": await repo.segment_sizes()}

    def families(self, snapshot: dict):
        customers = GaugeMetricFamily("crm_profile_customers", "Customers in the archive (erased ones too).")
        customers.add_metric([], snapshot["customers"])
        yield customers
        members = GaugeMetricFamily("crm_profile_segment_members", "Members per segment (rfm:<name> or custom).",
                                    labels=["segment"])
        for segment_id, n in sorted(snapshot["segments"].items()):
            members.add_metric([segment_id], n)
        yield members
