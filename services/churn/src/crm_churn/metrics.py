"""Metrics of the churn service: customers by level and the model in force (read from the database,
so every replica reports the same), customers scored by this process (by trigger), refit duration."""

from __future__ import annotations

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_churn.scoring import Scorer

_BY_LEVEL = text("SELECT level, count(*) AS n, COALESCE(sum(value_at_risk), 0) AS at_risk FROM churn_scores "
                 "GROUP BY level")
_MODEL = text("SELECT version, kind, report, trained_at FROM churn_models ORDER BY trained_at DESC LIMIT 1")


class ChurnMetrics(Collector):
    def __init__(self, registry, scorer: Scorer) -> None:
        self._scorer = scorer
        self._snapshot: dict | None = None
        self.refit_duration = Histogram(
            "crm_churn_refit_duration", "Time to fit a new model (loading the history included, rescoring not).",
            unit="seconds", buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300), registry=registry)
        registry.register(self)

    async def refresh(self, engine: AsyncEngine) -> None:
        async with engine.connect() as db:
            by_level = {row.level: (row.n, float(row.at_risk)) for row in await db.execute(_BY_LEVEL)}
            model = (await db.execute(_MODEL)).first()
        auc = None
        if model is not None:
            holdout = (model.report or {}).get("holdout") or {}
            auc = holdout.get("auc")
        self._snapshot = {"by_level": by_level, "auc": auc,
                          "trained_at": model.trained_at.timestamp() if model is not None else None}

    def collect(self):
        scored = CounterMetricFamily("crm_churn_scored", "Customers scored by this process, by what caused it.",
                                     labels=["trigger"])
        for trigger in ("event", "refit"):
            scored.add_metric([trigger], self._scorer.scored.get(trigger, 0))
        yield scored
        snapshot = self._snapshot
        if snapshot is None:
            return
        customers = GaugeMetricFamily("crm_churn_customers", "Scored customers, by churn risk level.", labels=["level"])
        at_risk = GaugeMetricFamily("crm_churn_value_at_risk", "Sum of score × 12-month spend, by level "
                                    "(in each customer's own currency).", labels=["level"])
        for level in ("low", "medium", "high"):
            n, value = snapshot["by_level"].get(level, (0, 0.0))
            customers.add_metric([level], n)
            at_risk.add_metric([level], value)
        yield customers
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
