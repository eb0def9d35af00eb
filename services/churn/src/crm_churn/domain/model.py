"""The churn model: BG/NBD for the purchase process, a logistic calibration on top of it with the
activity and service indicators, the reasons behind each score, and the quality figures of a
backtest. Pure numerics over numpy arrays; no I/O.

A customer *churns* when they place no paid order within the horizon (90 days by default) after
the moment they are scored. The score is the calibrated probability of that:

1. BG/NBD (``bgnbd.py``), fitted on everybody's (x, t_x, T), gives P(alive), the expected orders
   and P(no order in the horizon). The last is the model's own churn probability; it enters the
   calibration as its log-odds.
2. A logistic regression on that log-odds plus the seed indicators (silence against the customer's
   own rhythm, a slowing rhythm, activity and its trend, complaints, open tickets, SLA breaches,
   a low satisfaction rating) is trained on the shop's own history with a time cutoff: the
   features as they were at the cutoff, the label whether the customer ordered in the horizon
   after it. Each indicator may push the risk only in its known direction (or not at all).
3. Each score's reasons are the factors that push it above the average customer's log-odds, with
   their contribution in log-odds.

One-time buyers: BG/NBD gives them P(alive) = 1 whatever their silence (they have never had the
chance to drop out, in the model's terms). Their risk comes from P(no order in the horizon), which
*does* rise with silence, and from the calibration's own one-time-buyer terms (see docs/churn.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit
from scipy.stats import mannwhitneyu

from crm_churn.domain.bgnbd import BgNbdParams, expected_purchases, fit, p_alive, prob_no_purchase

DAY_S = 86_400.0
WEEK_DAYS = 7.0

# The CDNOW estimates of the 2005 paper (weeks): the model a shop starts with, before its own
# history has been fitted once.
PRIOR = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
PRIOR_VERSION = "prior-cdnow-2005"

FEATURES = ("bgnbd_no_purchase", "one_time_buyer", "overdue", "silence_one_time", "interval_trend",
            "activity_30d", "activity_trend", "complaints_90d", "open_tickets", "sla_breaches_90d", "low_csat")
# The direction each factor may push the risk, by domain knowledge: the coefficients are bounded
# accordingly (0 allowed), so a shop whose history happens to pair complaints with loyal customers,
# or whose features are collinear, never learns that a complaint or a fading interest is good.
# one_time_buyer is free: it only moves the one-time buyers' baseline.
SIGNS = {"bgnbd_no_purchase": 1, "overdue": 1, "silence_one_time": 1, "interval_trend": 1, "activity_30d": -1,
         "activity_trend": -1, "complaints_90d": 1, "open_tickets": 1, "sla_breaches_90d": 1, "low_csat": 1}
# Factors named as a reason against the average customer (how likely, how active). The others are
# named only when the customer really has them in the risky direction (value × coefficient > 0):
# "one order only" is no reason to give for a repeat buyer, even where the average is lower.
RELATIVE_REASONS = frozenset({"bgnbd_no_purchase", "activity_30d"})
REASON_MIN = 0.05  # log-odds: smaller pushes are not worth an agent's attention
REASONS_MAX = 5

ModelKind = Literal["prior", "bgnbd", "logistic"]


@dataclass(frozen=True)
class History:
    """What was known of each customer with at least one paid order at ``as_of`` (epoch seconds).

    One row per customer; times are epoch seconds, counts are floats (numpy), ``previous_order``
    and ``last_csat`` are NaN where there is none.
    """

    as_of: float
    customer_ids: list[str]
    history_version: list[int]  # see the churn_customers table: which state of the history this is
    orders: np.ndarray
    first_order: np.ndarray
    last_order: np.ndarray
    previous_order: np.ndarray
    value_12m: np.ndarray
    currency: list[str | None]
    activity_7d: np.ndarray
    activity_30d: np.ndarray
    activity_90d: np.ndarray
    activity_prev_60d: np.ndarray
    complaints_90d: np.ndarray
    open_tickets: np.ndarray
    sla_breaches_90d: np.ndarray
    last_csat: np.ndarray

    def __len__(self) -> int:
        return len(self.customer_ids)

    def take(self, mask: np.ndarray) -> History:
        """The rows where ``mask`` (booleans or indices) selects."""
        index = np.flatnonzero(mask) if mask.dtype == bool else mask
        values: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if isinstance(value, np.ndarray):
                values[name] = value[index]
            elif isinstance(value, list):
                values[name] = [value[i] for i in index]
        return replace(self, **values)

    def indicators_of(self) -> list[dict[str, Any]]:
        """Each customer's indicators in plain units (days, counts), as the API shows them."""
        days_since = (self.as_of - self.last_order) / DAY_S
        age = (self.as_of - self.first_order) / DAY_S
        mean_gap = np.where(self.orders >= 2, (self.last_order - self.first_order) / DAY_S
                            / np.maximum(self.orders - 1, 1), np.nan)
        last_gap = (self.last_order - self.previous_order) / DAY_S
        columns = {"orders": self.orders, "days_since_last_order": days_since, "customer_age_days": age,
                   "mean_gap_days": mean_gap, "last_gap_days": last_gap, "activity_7d": self.activity_7d,
                   "activity_30d": self.activity_30d, "activity_90d": self.activity_90d,
                   "activity_prev_60d": self.activity_prev_60d, "complaints_90d": self.complaints_90d,
                   "open_tickets": self.open_tickets, "sla_breaches_90d": self.sla_breaches_90d,
                   "last_csat": self.last_csat}
        rounded = {name: np.round(values, 1).tolist() for name, values in columns.items()}
        return [{name: (None if value != value else value) for name, value in zip(rounded, row, strict=True)}
                for row in zip(*rounded.values(), strict=True)]

    def summary(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BG/NBD's (x, t_x, T) in weeks: repeat orders, last repeat and age since the first order."""
        week = DAY_S * WEEK_DAYS
        return (self.orders - 1.0, (self.last_order - self.first_order) / week,
                np.maximum(self.as_of - self.first_order, 0.0) / week)


@dataclass(frozen=True)
class Indicators:
    p_alive: np.ndarray
    expected_orders_90d: np.ndarray
    no_purchase: np.ndarray  # P(no order in the horizon) under BG/NBD
    matrix: np.ndarray       # one column per name in FEATURES


def indicators(history: History, params: BgNbdParams, horizon_days: float) -> Indicators:
    x, t_x, T = history.summary()
    alive = p_alive(params, x, t_x, T)
    expected = expected_purchases(params, 90.0 / WEEK_DAYS, x, t_x, T)
    quiet = np.clip(prob_no_purchase(params, horizon_days / WEEK_DAYS, x, t_x, T), 1e-6, 1 - 1e-6)
    days_since_last = (history.as_of - history.last_order) / DAY_S
    repeat = history.orders >= 2
    mean_gap = np.where(repeat, (history.last_order - history.first_order) / DAY_S
                        / np.maximum(history.orders - 1, 1), 1.0)
    overdue = np.where(repeat, np.log1p(days_since_last / np.maximum(mean_gap, 1.0)), 0.0)
    silence_one_time = np.where(repeat, 0.0, np.log1p(days_since_last / 30.0))
    # The last gap against the mean of the earlier ones (three orders or more): > 0 is slowing down.
    earlier_gap = (history.previous_order - history.first_order) / DAY_S / np.maximum(history.orders - 2, 1)
    last_gap = (history.last_order - history.previous_order) / DAY_S
    trend = np.where(history.orders >= 3,
                     np.log((np.nan_to_num(last_gap) + 1.0) / (np.nan_to_num(earlier_gap) + 1.0)), 0.0)
    activity_trend = np.log((history.activity_30d + 1.0) / (history.activity_prev_60d / 2.0 + 1.0))
    low_csat = np.where(np.isnan(history.last_csat), 0.0, np.maximum(0.0, 3.0 - np.nan_to_num(history.last_csat)))
    matrix = np.column_stack([
        logit(quiet), (~repeat).astype(float), overdue, silence_one_time, trend,
        np.log1p(history.activity_30d), activity_trend, np.log1p(history.complaints_90d),
        np.log1p(history.open_tickets), np.log1p(history.sla_breaches_90d), low_csat])
    return Indicators(alive, expected, quiet, matrix)


@dataclass(frozen=True)
class Logistic:
    """A logistic regression on standardised features: log-odds = intercept + Σ coef·(x − mean)/scale."""

    mean: np.ndarray
    scale: np.ndarray
    intercept: float
    coef: np.ndarray

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Each factor's push on the log-odds, against the training population's average customer."""
        return (matrix - self.mean) / self.scale * self.coef

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        return expit(self.intercept + self.contributions(matrix).sum(axis=1))

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "intercept": self.intercept,
                "coef": self.coef.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Logistic:
        return cls(np.array(d["mean"]), np.array(d["scale"]), float(d["intercept"]), np.array(d["coef"]))

    @classmethod
    def identity(cls, mean_log_odds: float) -> Logistic:
        """The BG/NBD probability unchanged: coefficient 1 on its log-odds, 0 on everything else."""
        k = len(FEATURES)
        mean = np.zeros(k)
        mean[0] = mean_log_odds
        coef = np.zeros(k)
        coef[0] = 1.0
        return cls(mean, np.ones(k), mean_log_odds, coef)


def fit_logistic(matrix: np.ndarray, churned: np.ndarray, *, l2: float = 1.0) -> Logistic:
    """Maximum likelihood with an L2 penalty and the sign bounds of ``SIGNS``.

    scikit-learn's LogisticRegression has no bounds on coefficients, which the service indicators
    need; with them it is a dozen lines of L-BFGS-B over scipy with the exact gradient.
    """
    y = churned.astype(float)
    mean = matrix.mean(axis=0)
    scale = matrix.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (matrix - mean) / scale
    n, k = z.shape

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        log_odds = w[0] + z @ w[1:]
        value = np.sum(np.logaddexp(0.0, log_odds) - y * log_odds) / n + l2 * float(w[1:] @ w[1:]) / (2 * n)
        residual = expit(log_odds) - y
        grad = np.concatenate([[residual.sum() / n], z.T @ residual / n + l2 * w[1:] / n])
        return value, grad

    sign_bounds = {1: (0.0, None), -1: (None, 0.0), 0: (None, None)}
    bounds = [(None, None)] + [sign_bounds[SIGNS.get(name, 0)] for name in FEATURES]
    result = minimize(loss, np.zeros(k + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    return Logistic(mean, scale, float(result.x[0]), result.x[1:].copy())


@dataclass(frozen=True)
class Scores:
    score: np.ndarray
    p_alive: np.ndarray
    expected_orders_90d: np.ndarray
    one_time_buyer: np.ndarray
    reasons: list[list[dict[str, Any]]]


@dataclass(frozen=True)
class ChurnModel:
    version: str
    kind: ModelKind
    bgnbd: BgNbdParams
    calibration: Logistic
    horizon_days: float = 90.0
    features: tuple[str, ...] = field(default=FEATURES)

    def score(self, history: History) -> Scores:
        found = indicators(history, self.bgnbd, self.horizon_days)
        contributions = self.calibration.contributions(found.matrix)
        score = expit(self.calibration.intercept + contributions.sum(axis=1))
        present = found.matrix * self.calibration.coef > 0
        present[:, [FEATURES.index(f) for f in RELATIVE_REASONS]] = True
        nameable = np.where(present, contributions, -np.inf)
        reasons = [_reasons(nameable[i], i, history, found) for i in range(len(history))]
        return Scores(score=score, p_alive=found.p_alive, expected_orders_90d=found.expected_orders_90d,
                      one_time_buyer=history.orders < 2, reasons=reasons)

    def with_bgnbd(self, params: BgNbdParams) -> ChurnModel:
        return replace(self, bgnbd=params)

    def params(self) -> dict[str, Any]:
        return {"bgnbd": self.bgnbd.as_dict(), "horizon_days": self.horizon_days, "features": list(self.features),
                "calibration": self.calibration.as_dict()}

    @classmethod
    def from_params(cls, version: str, kind: ModelKind, params: dict[str, Any]) -> ChurnModel:
        if tuple(params["features"]) != FEATURES:
            raise ValueError("the stored model was trained on other features; refit it")
        return cls(version=version, kind=kind, bgnbd=BgNbdParams(**params["bgnbd"]),
                   calibration=Logistic.from_dict(params["calibration"]), horizon_days=params["horizon_days"])


def prior_model(horizon_days: float = 90.0) -> ChurnModel:
    return ChurnModel(PRIOR_VERSION, "prior", PRIOR, Logistic.identity(0.0), horizon_days)


def fit_bgnbd(history: History, initial: BgNbdParams | None = None) -> BgNbdParams:
    """BG/NBD fitted on the whole base (ages and recencies rounded to days: it groups equal rows)."""
    x, t_x, T = history.summary()
    day = 1.0 / WEEK_DAYS
    params, _ = fit(x, np.round(t_x / day) * day, np.round(T / day) * day, initial=initial or PRIOR)
    return params


def train(history: History, churned: np.ndarray, params: BgNbdParams, *, version: str,
          horizon_days: float) -> ChurnModel:
    """The calibrated model from features at a cutoff (``history``) and what happened after it."""
    found = indicators(history, params, horizon_days)
    return ChurnModel(version, "logistic", params, fit_logistic(found.matrix, churned), horizon_days)


def untrained(params: BgNbdParams, history: History, *, version: str, horizon_days: float) -> ChurnModel:
    """BG/NBD alone, when the history is too short for labels: its probability, uncalibrated."""
    found = indicators(history, params, horizon_days)
    return ChurnModel(version, "bgnbd", params, Logistic.identity(float(np.mean(found.matrix[:, 0]))), horizon_days)


# -- quality ----------------------------------------------------------------------------------------

def auc(score: np.ndarray, churned: np.ndarray) -> float | None:
    """Area under the ROC curve: the Mann–Whitney U of churners' scores over the others', normalised."""
    positive, negative = score[churned], score[~churned]
    if len(positive) == 0 or len(negative) == 0:
        return None
    return float(mannwhitneyu(positive, negative).statistic / (len(positive) * len(negative)))


def precision_at(score: np.ndarray, churned: np.ndarray, share: float = 0.1) -> float | None:
    """The share of real churners among the ``share`` highest scores."""
    if len(score) == 0:
        return None
    top = np.argsort(-score, kind="stable")[: max(1, math.ceil(len(score) * share))]
    return float(churned[top].mean())


def calibration_error(score: np.ndarray, churned: np.ndarray, bins: int = 10) -> float | None:
    """Expected calibration error: |mean score − churn rate| per equal-width bin, weighted by the bin's size."""
    if len(score) == 0:
        return None
    which = np.minimum((score * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.sum() * abs(score[members].mean() - churned[members].mean())
    return float(error / len(score))


def calibration_bins(score: np.ndarray, churned: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """The reliability diagram behind :func:`calibration_error`: for each non-empty equal-width bin
    of scores, its customers, their mean score and their real churn rate (a calibrated model has
    the two equal)."""
    which = np.minimum((score * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        members = which == b
        if members.any():
            out.append({"from": round(b / bins, 4), "to": round((b + 1) / bins, 4), "customers": int(members.sum()),
                        "mean_score": float(score[members].mean()), "churn_rate": float(churned[members].mean())})
    return out


def quality(score: np.ndarray, churned: np.ndarray) -> dict[str, Any]:
    return {"customers": len(score), "churn_rate": float(churned.mean()) if len(score) else None,
            "auc": auc(score, churned), "precision_at_top_10pct": precision_at(score, churned),
            "calibration_error": calibration_error(score, churned),
            "calibration": calibration_bins(score, churned)}


def levels(score: np.ndarray, medium_at: float, high_at: float) -> list[str]:
    return np.where(score >= high_at, "high", np.where(score >= medium_at, "medium", "low")).tolist()


# -- reasons ----------------------------------------------------------------------------------------

def _reasons(contributions: np.ndarray, i: int, history: History, found: Indicators) -> list[dict[str, Any]]:
    order = np.argsort(-contributions, kind="stable")
    picked = []
    for j in order[:REASONS_MAX]:
        if contributions[j] < REASON_MIN:
            break
        picked.append({"factor": FEATURES[j], "contribution": round(float(contributions[j]), 3),
                       "detail": _detail(FEATURES[j], i, history, found)})
    return picked


def _detail(factor: str, i: int, h: History, found: Indicators) -> str:
    days_since_last = int((h.as_of - h.last_order[i]) / DAY_S)
    orders = int(h.orders[i])
    match factor:
        case "bgnbd_no_purchase":
            return (f"no order for {days_since_last} days; P(alive) {found.p_alive[i]:.2f}, "
                    f"{found.expected_orders_90d[i]:.2f} orders expected in 90 days")
        case "one_time_buyer":
            return "one order only"
        case "overdue":
            gap = (h.last_order[i] - h.first_order[i]) / DAY_S / max(orders - 1, 1)
            return f"no order for {days_since_last} days; usually one every {gap:.0f} days"
        case "silence_one_time":
            return f"no second order in {days_since_last} days"
        case "interval_trend":
            last = (h.last_order[i] - h.previous_order[i]) / DAY_S
            earlier = (h.previous_order[i] - h.first_order[i]) / DAY_S / max(orders - 2, 1)
            return f"last gap between orders {last:.0f} days, earlier {earlier:.0f} days on average"
        case "activity_30d":
            return f"interactions in the last 30 days: {int(h.activity_30d[i])}"
        case "activity_trend":
            before = h.activity_prev_60d[i] / 2.0
            return f"{int(h.activity_30d[i])} interactions in 30 days against {before:.1f} a month before"
        case "complaints_90d":
            return f"complaints in 90 days: {int(h.complaints_90d[i])}"
        case "open_tickets":
            return f"open tickets: {int(h.open_tickets[i])}"
        case "sla_breaches_90d":
            return f"tickets with a missed SLA in 90 days: {int(h.sla_breaches_90d[i])}"
        case "low_csat":
            return f"last satisfaction rating {int(h.last_csat[i])}/5"
    return factor
