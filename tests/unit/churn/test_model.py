"""The churn model's pure parts: the calibration fit, its sign bounds, the quality figures, the
one-time-buyer behaviour and the reasons (no database)."""

from __future__ import annotations

import numpy as np
import pytest
from crm_churn.domain.bgnbd import p_alive, prob_no_purchase
from crm_churn.domain.model import (
    FEATURES,
    PRIOR,
    ChurnModel,
    History,
    Logistic,
    auc,
    calibration_bins,
    calibration_error,
    fit_logistic,
    levels,
    precision_at,
    prior_model,
)

DAY = 86_400.0


def history(rows: list[dict], as_of_day: float = 400.0) -> History:
    """Customers described by day numbers (orders on days, counts); everything else zero."""
    def col(name, default=0.0):
        return np.array([float(r.get(name, default)) for r in rows])
    orders = [sorted(r["orders"]) for r in rows]
    return History(
        as_of=as_of_day * DAY, customer_ids=[f"c{i}" for i in range(len(rows))], history_version=[0] * len(rows),
        orders=np.array([len(o) for o in orders], dtype=float),
        first_order=np.array([o[0] * DAY for o in orders]), last_order=np.array([o[-1] * DAY for o in orders]),
        previous_order=np.array([o[-2] * DAY if len(o) > 1 else np.nan for o in orders]),
        value_12m=col("value", 100.0), currency=["CNY"] * len(rows), activity_7d=col("a7"),
        activity_30d=col("a30"), activity_90d=col("a90"), activity_prev_60d=col("prev60"),
        complaints_90d=col("complaints"), open_tickets=col("open"), sla_breaches_90d=col("breaches"),
        last_csat=col("csat", np.nan))


def test_the_logistic_fit_recovers_known_coefficients():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20_000, len(FEATURES)))
    true = np.zeros(len(FEATURES))
    true[FEATURES.index("bgnbd_no_purchase")] = 1.5
    true[FEATURES.index("complaints_90d")] = 0.8
    true[FEATURES.index("activity_30d")] = -1.0
    y = rng.random(20_000) < 1 / (1 + np.exp(-(0.3 + x @ true)))
    fitted = fit_logistic(x, y)
    assert fitted.coef == pytest.approx(true, abs=0.08)
    assert fitted.intercept == pytest.approx(0.3, abs=0.08)


def test_indicators_that_may_only_raise_the_risk_never_get_a_negative_weight():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5_000, len(FEATURES)))
    complaints = FEATURES.index("complaints_90d")
    activity = FEATURES.index("activity_30d")
    # A perverse history: complaints go with loyal customers, activity with churners.
    y = rng.random(5_000) < 1 / (1 + np.exp(-(2.0 * x[:, activity] - 2.0 * x[:, complaints])))
    fitted = fit_logistic(x, y)
    assert fitted.coef[complaints] == 0.0 and fitted.coef[activity] == 0.0


def test_quality_figures_on_known_rankings():
    churned = np.array([True, True, False, False, True, False, False, False, False, False])
    perfect = np.where(churned, 0.9, 0.1)
    assert auc(perfect, churned) == 1.0
    assert auc(1 - perfect, churned) == 0.0
    assert auc(np.full(10, 0.5), churned) == 0.5
    assert precision_at(perfect, churned, share=0.3) == 1.0
    assert precision_at(1 - perfect, churned, share=0.1) == 0.0
    assert calibration_error(np.where(churned, 1.0, 0.0), churned) == 0.0
    assert calibration_error(np.full(10, 0.3), churned) == pytest.approx(0.0)  # 3 of 10 churn at 0.3
    assert calibration_error(np.full(10, 0.8), churned) == pytest.approx(0.5)
    assert auc(perfect[:2], churned[:2]) is None  # one class only


def test_the_calibration_bins_are_the_reliability_diagram_behind_the_calibration_error():
    churned = np.array([True, True, False, False, True, False, False, False, False, False])
    score = np.array([0.95, 0.85, 0.82, 0.15, 0.55, 0.12, 0.05, 0.05, 1.0, 0.0])
    bins = calibration_bins(score, churned)
    assert [(b["from"], b["to"], b["customers"]) for b in bins] == [(0.0, 0.1, 3), (0.1, 0.2, 2), (0.5, 0.6, 1),
                                                                    (0.8, 0.9, 2), (0.9, 1.0, 2)]
    assert bins[3]["mean_score"] == pytest.approx(0.835) and bins[3]["churn_rate"] == 0.5
    assert sum(b["customers"] for b in bins) == len(score)
    weighted = sum(b["customers"] * abs(b["mean_score"] - b["churn_rate"]) for b in bins) / len(score)
    assert weighted == pytest.approx(calibration_error(score, churned))
    assert calibration_bins(np.array([]), np.array([], dtype=bool)) == []


def test_one_time_buyers_are_alive_for_bgnbd_but_their_risk_rises_with_silence():
    weeks = np.array([1.0, 10.0, 30.0, 60.0])
    zeros = np.zeros(4)
    assert np.all(p_alive(PRIOR, zeros, zeros, weeks) == 1.0)
    quiet = prob_no_purchase(PRIOR, 90 / 7, zeros, zeros, weeks)
    assert np.all(np.diff(quiet) > 0) and quiet[0] > 0.5
    scored = prior_model().score(history([{"orders": [399]}, {"orders": [100]}]))
    assert scored.one_time_buyer.all() and np.all(scored.p_alive == 1.0)
    assert scored.score[1] > scored.score[0]


def test_reasons_name_only_what_the_customer_has_with_their_push_on_the_odds():
    k = len(FEATURES)
    coef = np.zeros(k)
    for name, value in (("bgnbd_no_purchase", 1.0), ("one_time_buyer", -0.5), ("sla_breaches_90d", 0.7),
                        ("activity_30d", -0.9)):
        coef[FEATURES.index(name)] = value
    model = ChurnModel("m-test", "logistic", PRIOR, Logistic(np.zeros(k), np.ones(k), -1.0, coef))
    customers = history([
        {"orders": [100, 200, 300], "breaches": 2, "a30": 0},
        {"orders": [390], "a30": 20},
    ])
    scored = model.score(customers)
    first = {r["factor"]: r for r in scored.reasons[0]}
    assert "sla_breaches_90d" in first and first["sla_breaches_90d"]["contribution"] == pytest.approx(
        0.7 * np.log1p(2), abs=1e-3)
    assert first["sla_breaches_90d"]["detail"] == "tickets with a missed SLA in 90 days: 2"
    # Being a repeat buyer (one_time_buyer = 0) pushes nothing here; "one order only" is never said of them.
    assert "one_time_buyer" not in first
    second = {r["factor"] for r in scored.reasons[1]}
    assert "sla_breaches_90d" not in second and "activity_30d" not in second  # none, and busy
    contributions = [r["contribution"] for r in scored.reasons[0]]
    assert contributions == sorted(contributions, reverse=True) and min(contributions) >= 0.05


def test_a_stored_model_round_trips_and_levels_follow_the_thresholds():
    model = prior_model(60.0)
    again = ChurnModel.from_params(model.version, model.kind, model.params())
    customers = history([{"orders": [10, 40, 90]}, {"orders": [350]}])
    assert again.score(customers).score == pytest.approx(model.score(customers).score)
    assert levels(np.array([0.1, 0.4, 0.69, 0.7, 0.99]), 0.4, 0.7) == ["low", "medium", "medium", "high", "high"]
    with pytest.raises(ValueError, match="other features"):
        ChurnModel.from_params("old", "logistic", {**model.params(), "features": ["recency"]})
