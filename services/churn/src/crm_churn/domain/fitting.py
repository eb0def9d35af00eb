"""Fitting the model on the shop's own history, with a time-split backtest (pure; the refit use case
loads the history and stores the result).

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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crm_churn.domain.model import FEATURES, ChurnModel, History, fit_bgnbd, quality, train, untrained

MIN_PER_CLASS = 10  # churners and stayers each, to train a calibration
HOLDOUT_SHARE = 0.3


def fit(version: str, current: History, at_train: History, churned_train: np.ndarray, at_test: History,
        churned_test: np.ndarray, *, horizon_days: float) -> tuple[ChurnModel, dict[str, Any]]:
    """The production model and its quality report (see the module's docstring)."""
    horizon = float(horizon_days)
    params_now = fit_bgnbd(current)
    if not trainable(at_train, churned_train):
        model = untrained(params_now, current, version=version, horizon_days=horizon)
        return model, {"kind": "bgnbd", "method": None, "holdout": None,
                       "note": "history shorter than the horizon: BG/NBD alone, uncalibrated"}
    params_train = fit_bgnbd(at_train, params_now)
    model = train(at_train, churned_train, params_train, version=version, horizon_days=horizon)
    coefficients = dict(zip(FEATURES, model.calibration.coef.tolist(), strict=True))
    report: dict[str, Any] = {"kind": "logistic", "coefficients": coefficients,
                              "intercept": model.calibration.intercept,
                              "training": {"customers": len(at_train), "churn_rate": float(churned_train.mean())}}
    if trainable(at_test, churned_test):
        # Out of time: what this recipe, run one horizon ago, would have said about the last horizon.
        earlier = train(at_test, churned_test, fit_bgnbd(at_test, params_train), version=version,
                        horizon_days=horizon).with_bgnbd(params_train)
        report["method"] = "time_split"
        report["holdout"] = quality(earlier.score(at_train).score, churned_train)
    else:
        rng = np.random.default_rng(20050101)
        held = rng.random(len(at_train)) < HOLDOUT_SHARE
        if trainable(at_train.take(~held), churned_train[~held]) and held.sum() >= 2 * MIN_PER_CLASS:
            partial = train(at_train.take(~held), churned_train[~held], params_train, version=version,
                            horizon_days=horizon)
            report["method"] = "customer_split"
            report["holdout"] = quality(partial.score(at_train.take(held)).score, churned_train[held])
        else:
            report["method"], report["holdout"] = None, None
    return model.with_bgnbd(params_now), report


def churned(history: History, bought: set[str]) -> np.ndarray:
    """Whether each customer of ``history`` is not among those who ``bought`` in the window after."""
    return np.array([customer_id not in bought for customer_id in history.customer_ids], dtype=bool)


def trainable(history: History, churned: np.ndarray) -> bool:
    return len(history) > 0 and int(churned.sum()) >= MIN_PER_CLASS and int((~churned).sum()) >= MIN_PER_CLASS
