"""Refitting the model on the shop's own history, with a time-split backtest, then rescoring everybody.

With now = N and the horizon H (90 days):

- **production model**: BG/NBD fitted on everything known at N (it scores as of N); the
  calibration trained on the features as they were at N − H and whether each customer ordered in
  [N − H, N).
- **backtest** (the quality report): the same recipe moved back by H — BG/NBD and calibration from
  the features at N − 2H and the orders in [N − 2H, N − H) — scored at N − H and compared with what
  happened in [N − H, N). That is exactly how the production model will be used, one horizon later.
  When the history is shorter than 2H, the backtest holds out 30 % of the customers at N − H instead
  (``method: customer_split``); shorter than H, there are no labels yet and the model is BG/NBD
  alone (``kind: bgnbd``), uncalibrated, with no backtest.

One refit at a time across replicas (an advisory lock); the CPU work runs in a worker thread so
the service keeps answering and its consumer keeps its group membership.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from crm_shared.logging import get_logger
from crm_shared.problems import Problem
from prometheus_client import Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_churn.domain.model import (
    FEATURES,
    ChurnModel,
    History,
    fit_bgnbd,
    quality,
    train,
    untrained,
)
from crm_churn.repository import load_history, purchasers
from crm_churn.scoring import Scorer
from crm_churn.settings import ChurnSettings

log = get_logger(__name__)

_REFIT_LOCK = 0x63_68_75_72_6E  # "churn"
MIN_PER_CLASS = 10  # churners and stayers each, to train a calibration
HOLDOUT_SHARE = 0.3


class RefitRunning(Problem):
    def __init__(self) -> None:
        super().__init__(409, "Conflict", "a refit is already running; try again when it has finished")


class NotEnoughHistory(Problem):
    def __init__(self, customers: int, needed: int) -> None:
        super().__init__(422, "Not enough history",
                         f"{customers} customers have a paid order; a fit needs at least {needed}",
                         customers=customers, needed=needed)


class Refitter:
    def __init__(self, engine: AsyncEngine, scorer: Scorer, settings: ChurnSettings, duration: Histogram) -> None:
        self._engine = engine
        self._scorer = scorer
        self._settings = settings
        self._duration = duration

    async def refit(self, *, actor: str) -> dict[str, Any]:
        """Fit, store and put in force a new model, then rescore every customer. Returns its report."""
        async with self._engine.connect() as lock:
            lock = await lock.execution_options(isolation_level="AUTOCOMMIT")
            if not (await lock.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _REFIT_LOCK})).scalar():
                raise RefitRunning()
            try:
                return await self._refit(actor)
            finally:
                await lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _REFIT_LOCK})

    async def scheduled(self) -> None:
        try:
            await self.refit(actor="system:schedule")
        except (RefitRunning, NotEnoughHistory) as skipped:
            log.info("scheduled refit skipped", reason=skipped.detail)

    async def _refit(self, actor: str) -> dict[str, Any]:
        started = time.perf_counter()
        now = datetime.now(UTC)
        horizon = timedelta(days=self._settings.churn_horizon_days)
        train_cutoff, test_cutoff = now - horizon, now - 2 * horizon
        async with self._engine.connect() as db:
            db = await db.execution_options(isolation_level="REPEATABLE READ")  # one snapshot for all windows
            current = await load_history(db, now)
            if len(current) < self._settings.refit_min_customers:
                raise NotEnoughHistory(len(current), self._settings.refit_min_customers)
            at_train = await load_history(db, train_cutoff)
            bought_after_train = await purchasers(db, train_cutoff, now)
            at_test = await load_history(db, test_cutoff)
            bought_after_test = await purchasers(db, test_cutoff, train_cutoff)
        loaded = time.perf_counter() - started
        version = f"churn-{now.strftime('%Y%m%dT%H%M%S')}-{now.microsecond:06d}"
        model, report = await asyncio.to_thread(
            self._fit, version, current, at_train, _churned(at_train, bought_after_train),
            at_test, _churned(at_test, bought_after_test))
        report.update({"trained_at": now.isoformat(), "horizon_days": self._settings.churn_horizon_days,
                       "cutoffs": {"train": train_cutoff.isoformat(), "backtest": test_cutoff.isoformat()},
                       "customers": len(current)})
        fitted = time.perf_counter() - started
        async with self._engine.connect() as tx:
            await tx.execute(text("""
                INSERT INTO churn_models (version, kind, params, report, trained_at, duration_s, created_by)
                VALUES (:version, :kind, CAST(:params AS jsonb), CAST(:report AS jsonb), :at, :duration, :actor)"""), {
                "version": version, "kind": model.kind, "params": orjson.dumps(model.params()).decode(),
                "report": orjson.dumps(report).decode(), "at": now, "duration": fitted, "actor": actor})
            await tx.commit()
        self._scorer.store.put(model)
        self._duration.observe(fitted)
        scored, changes = await self._scorer.rescore_everybody(self._engine, model)
        total = time.perf_counter() - started
        log.info("churn model refitted", version=version, kind=model.kind, customers=len(current),
                 load_s=round(loaded, 2), fit_s=round(fitted - loaded, 2), rescore_s=round(total - fitted, 2),
                 level_changes=changes, auc=report["holdout"].get("auc") if report["holdout"] else None)
        return {"version": version, "kind": model.kind, "params": model.params(), "report": report,
                "duration_s": round(fitted, 3), "rescored": scored, "level_changes": changes,
                "rescore_s": round(total - fitted, 3)}

    def _fit(self, version: str, current: History, at_train: History, churned_train: np.ndarray,
             at_test: History, churned_test: np.ndarray) -> tuple[ChurnModel, dict[str, Any]]:
        horizon = float(self._settings.churn_horizon_days)
        params_now = fit_bgnbd(current)
        if not _trainable(at_train, churned_train):
            model = untrained(params_now, current, version=version, horizon_days=horizon)
            return model, {"kind": "bgnbd", "method": None, "holdout": None,
                           "note": "history shorter than the horizon: BG/NBD alone, uncalibrated"}
        params_train = fit_bgnbd(at_train, params_now)
        model = train(at_train, churned_train, params_train, version=version, horizon_days=horizon)
        coefficients = dict(zip(FEATURES, model.calibration.coef.tolist(), strict=True))
        report: dict[str, Any] = {"kind": "logistic", "coefficients": coefficients,
                                  "intercept": model.calibration.intercept,
                                  "training": {"customers": len(at_train), "churn_rate": float(churned_train.mean())}}
        if _trainable(at_test, churned_test):
            # Out of time: what this recipe, run one horizon ago, would have said about the last horizon.
            earlier = train(at_test, churned_test, fit_bgnbd(at_test, params_train), version=version,
                            horizon_days=horizon).with_bgnbd(params_train)
            report["method"] = "time_split"
            report["holdout"] = quality(earlier.score(at_train).score, churned_train)
        else:
            rng = np.random.default_rng(20050101)
            held = rng.random(len(at_train)) < HOLDOUT_SHARE
            if _trainable(at_train.take(~held), churned_train[~held]) and held.sum() >= 2 * MIN_PER_CLASS:
                partial = train(at_train.take(~held), churned_train[~held], params_train, version=version,
                                horizon_days=horizon)
                report["method"] = "customer_split"
                report["holdout"] = quality(partial.score(at_train.take(held)).score, churned_train[held])
            else:
                report["method"], report["holdout"] = None, None
        return model.with_bgnbd(params_now), report


def _churned(history: History, bought: set[str]) -> np.ndarray:
    return np.array([customer_id not in bought for customer_id in history.customer_ids], dtype=bool)


def _trainable(history: History, churned: np.ndarray) -> bool:
    return len(history) > 0 and int(churned.sum()) >= MIN_PER_CLASS and int((~churned).sum()) >= MIN_PER_CLASS
