"""Metrics of the churn service.

Database-wide, exported by one replica only (crm_shared.metrics.DatabaseWideMetrics), so ``sum``
over replicas is the figure itself: customers by level, the value at risk by level and currency
(money is never added across currencies), the model in force. Per process, on every replica:
customers scored by this process (by trigger) and refit durations."""

from __future__ import annotations

from crm_shared.metrics import DatabaseWideMetrics, ExporterElection
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from crm_churn.repository import ChurnRepository
from crm_churn.usecases.scoring import Scorer

LEVELS = ("low", "medium", "high")


class ChurnMetrics(DatabaseWideMetrics):
    def __init__(self, registry, election: ExporterElection, scorer: Scorer) -> None:
        self._scorer = scorer
        self.refit_duration = Histogram(
            "crm_churn_refit_duration", "Time to fit a new model (loading the history included, rescoring not).",
            unit="seconds", buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300), registry=registry)
        super().__init__(registry, election)

    async def read(self, db) -> dict:
        return await ChurnRepository(db).metrics_snapshot()

    def process_families(self):
        scored = CounterMetricFamily("crm_churn_scored", "Customers scored by this process, by what caused it.",
                                     labels=["trigger"])
        for trigger in ("event", "refit"):
            scored.add_metric([trigger], self._scorer.scored.get(trigger, 0))
        yield scored

    def families(self, snapshot: dict):
        customers = GaugeMetricFamily("crm_churn_customers", "Scored customers, by churn risk level.", labels=["level"])
        for level in LEVELS:
            customers.add_metric([level], snapshot["by_level"].get(level, 0))
        yield customers
        at_risk = GaugeMetricFamily("crm_churn_value_at_risk", "Sum of score × 12-month spend, by level and "
                                    "currency (the currency of each customer's latest order).",
                                    labels=["level", "currency"])
        for (level, currency), value in sorted(snapshot["at_risk"].items()):
            at_risk.add_metric([level, currency], value)
        yield at_risk
        if snapshot["auc"] is not None:
            auc = GaugeMetricFamily("crm_churn_model_auc", "Holdout AUC of the model in force.")
            auc.add_metric([], snapshot["auc"])
            yield auc
        if snapshot["trained_at"] is not None:
            trained = GaugeMetricFamily("crm_churn_model_trained_timestamp", "When the model in force was fitted.",
                                        unit="seconds")
            trained.add_metric([], snapshot["trained_at"])
            yield trained
