"""A campaign's measured effect: treatment against control, with confidence intervals.

- Conversion: the rate of each group, the difference (treatment − control) with Newcombe's hybrid
  score interval (method 10 of Newcombe 1998, from the two Wilson score intervals; it keeps good
  coverage with small groups and rates near 0 or 1, where the textbook Wald interval fails), and the
  relative lift (difference / control rate).
- Revenue per customer: each group's mean and the difference with Welch's interval (unequal
  variances, Welch–Satterthwaite degrees of freedom, Student's t quantile computed here from the
  regularized incomplete beta function: stdlib only).

A figure that cannot be computed is None (an empty group, a control rate of 0 for the relative lift,
fewer than two customers in a group for the revenue interval); ``significant`` is then False.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from statistics import NormalDist

MONEY_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class GroupOutcome:
    customers: int
    converted: int
    revenue: Decimal       # sum over the group's customers
    revenue_sq: Decimal    # sum of squares of per-customer revenue

    def __post_init__(self) -> None:
        if self.customers < 0 or not 0 <= self.converted <= self.customers:
            raise ValueError("need 0 <= converted <= customers")
        if self.revenue_sq < 0:
            raise ValueError("revenue_sq cannot be negative")


@dataclass(frozen=True)
class Lift:
    confidence: float
    treatment_rate: float | None
    control_rate: float | None
    difference: float | None                              # treatment − control, in rate points (0..1)
    difference_interval: tuple[float, float] | None
    relative_lift: float | None                           # difference / control rate
    significant: bool                                     # the conversion interval excludes 0
    treatment_revenue_per_customer: Decimal | None
    control_revenue_per_customer: Decimal | None
    revenue_difference: Decimal | None
    revenue_interval: tuple[Decimal, Decimal] | None
    revenue_significant: bool


def lift(treatment: GroupOutcome, control: GroupOutcome, confidence: float = 0.95) -> Lift:
    """Compares ``treatment`` with ``control`` at the given two-sided ``confidence`` (0 < confidence < 1)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    rate_t = _rate(treatment)
    rate_c = _rate(control)
    difference = interval = relative = None
    if rate_t is not None and rate_c is not None:
        difference = rate_t - rate_c
        interval = newcombe_interval(treatment.converted, treatment.customers, control.converted,
                                     control.customers, z)
        relative = difference / rate_c if rate_c > 0 else None
    mean_t = _mean(treatment)
    mean_c = _mean(control)
    revenue_difference = revenue_interval = None
    if mean_t is not None and mean_c is not None:
        revenue_difference = _money(mean_t - mean_c)
        welch = welch_interval(treatment, control, confidence)
        if welch is not None:
            revenue_interval = (_money(welch[0]), _money(welch[1]))
    return Lift(
        confidence=confidence,
        treatment_rate=rate_t,
        control_rate=rate_c,
        difference=difference,
        difference_interval=interval,
        relative_lift=relative,
        significant=interval is not None and _excludes_zero(interval),
        treatment_revenue_per_customer=None if mean_t is None else _money(mean_t),
        control_revenue_per_customer=None if mean_c is None else _money(mean_c),
        revenue_difference=revenue_difference,
        revenue_interval=revenue_interval,
        revenue_significant=revenue_interval is not None and _excludes_zero(revenue_interval),
    )


def _rate(group: GroupOutcome) -> float | None:
    return group.converted / group.customers if group.customers else None


def _mean(group: GroupOutcome) -> Decimal | None:
    return group.revenue / group.customers if group.customers else None


def _money(value: Decimal | float) -> Decimal:
    return Decimal(str(value)).quantize(MONEY_PLACES)


def _excludes_zero(interval: tuple[float, float] | tuple[Decimal, Decimal]) -> bool:
    return interval[0] > 0 or interval[1] < 0


def wilson_interval(successes: int, trials: int, z: float) -> tuple[float, float]:
    """Wilson's score interval for a proportion (Wilson 1927), without continuity correction."""
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, z: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 − p2 (Newcombe 1998, method 10)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def welch_interval(a: GroupOutcome, b: GroupOutcome, confidence: float) -> tuple[float, float] | None:
    """Welch's interval for mean revenue of ``a`` − ``b``; None when a group has fewer than two customers."""
    if a.customers < 2 or b.customers < 2:
        return None
    mean_a, var_a = _mean_variance(a)
    mean_b, var_b = _mean_variance(b)
    se_a, se_b = var_a / a.customers, var_b / b.customers
    difference = mean_a - mean_b
    if se_a + se_b == 0:
        return difference, difference  # no spread at all: the difference is exact
    df = (se_a + se_b) ** 2 / (se_a ** 2 / (a.customers - 1) + se_b ** 2 / (b.customers - 1))
    half = student_t_quantile(0.5 + confidence / 2, df) * math.sqrt(se_a + se_b)
    return difference - half, difference + half


def _mean_variance(group: GroupOutcome) -> tuple[float, float]:
    # Exact in Decimal before the subtraction, which would lose precision in floats for large sums.
    n = group.customers
    mean = group.revenue / n
    variance = (group.revenue_sq - group.revenue * mean) / (n - 1)
    return float(mean), max(0.0, float(variance))


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` (> 0, real) degrees of freedom, to about 1e-10."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError("need 0 < p < 1 and df > 0")
    if p < 0.5:
        return -student_t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if _t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


def _t_cdf(t: float, df: float) -> float:
    """P(T <= t) for t >= 0."""
    return 1.0 - 0.5 * _regularized_beta(df / (df + t * t), df / 2, 0.5)


def _regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), by the continued fraction of Numerical Recipes (modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only on this side; use the symmetry
        return 1.0 - _regularized_beta(1.0 - x, b, a)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * fraction / a
