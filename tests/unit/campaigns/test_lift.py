"""Lift: conversion difference with Newcombe's interval, revenue difference with Welch's, against published values."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from crm_campaigns.domain.lift import GroupOutcome, lift, newcombe_interval, student_t_quantile, welch_interval

Z95 = 1.959963984540054


def outcome(customers: int, converted: int, revenues: list[str] | None = None) -> GroupOutcome:
    values = [Decimal(value) for value in revenues or []]
    return GroupOutcome(customers, converted, sum(values, Decimal(0)), sum((v * v for v in values), Decimal(0)))


def group_of(revenues: list[float]) -> GroupOutcome:
    return outcome(len(revenues), sum(1 for value in revenues if value > 0), [str(value) for value in revenues])


# Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10 (score, no continuity correction).
@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "low", "high"), [
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
    (10, 10, 0, 10, 0.6075, 1.0000),
])
def test_newcombe_interval_matches_the_published_table(x1, n1, x2, n2, low, high):
    interval = newcombe_interval(x1, n1, x2, n2, Z95)
    assert interval == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def test_lift_of_conversions():
    result = lift(outcome(70, 56), outcome(80, 48))
    assert result.treatment_rate == pytest.approx(0.8)
    assert result.control_rate == pytest.approx(0.6)
    assert result.difference == pytest.approx(0.2)
    assert result.difference_interval == (pytest.approx(0.0524, abs=5e-5), pytest.approx(0.3339, abs=5e-5))
    assert result.relative_lift == pytest.approx(1 / 3)
    assert result.significant is True


def test_a_difference_whose_interval_contains_zero_is_not_significant():
    result = lift(outcome(56, 5), outcome(29, 0))
    assert result.difference_interval[0] < 0 < result.difference_interval[1]
    assert result.significant is False
    assert result.relative_lift is None  # control rate 0


def test_a_negative_effect_is_significant_too():
    result = lift(outcome(80, 48), outcome(70, 56))
    assert result.difference == pytest.approx(-0.2)
    assert result.difference_interval == (pytest.approx(-0.3339, abs=5e-5), pytest.approx(-0.0524, abs=5e-5))
    assert result.significant is True


def test_higher_confidence_widens_the_interval():
    narrow = lift(outcome(70, 56), outcome(80, 48), confidence=0.90).difference_interval
    wide = lift(outcome(70, 56), outcome(80, 48), confidence=0.99).difference_interval
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_empty_groups_give_nones():
    result = lift(outcome(0, 0), outcome(80, 48, ["10"] * 80))
    assert result.treatment_rate is None and result.control_rate == pytest.approx(0.6)
    assert result.difference is None and result.difference_interval is None and result.relative_lift is None
    assert result.treatment_revenue_per_customer is None
    assert result.control_revenue_per_customer == Decimal("10.0000")
    assert result.revenue_difference is None and result.revenue_interval is None
    assert result.significant is False and result.revenue_significant is False


# R: t.test(extra ~ group, data = sleep) — Welch: df = 17.776, 95% CI -3.3654832 to 0.2054832, means 0.75 / 2.33.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_welch_interval_matches_r():
    low, high = welch_interval(group_of(SLEEP_1), group_of(SLEEP_2), 0.95)
    assert low == pytest.approx(-3.3654832, abs=1e-6)
    assert high == pytest.approx(0.2054832, abs=1e-6)


def test_revenue_per_customer_and_difference():
    result = lift(group_of(SLEEP_2), group_of(SLEEP_1))
    assert result.treatment_revenue_per_customer == Decimal("2.3300")
    assert result.control_revenue_per_customer == Decimal("0.7500")
    assert result.revenue_difference == Decimal("1.5800")
    assert result.revenue_interval == (Decimal("-0.2055"), Decimal("3.3655"))
    assert result.revenue_significant is False


def test_revenue_interval_needs_two_customers_per_group():
    result = lift(outcome(1, 1, ["5"]), outcome(10, 2, ["5", "5"]))
    assert result.revenue_difference == Decimal("4.0000")
    assert result.revenue_interval is None and result.revenue_significant is False


def test_no_spread_gives_an_exact_difference():
    result = lift(outcome(4, 4, ["3"] * 4), outcome(4, 4, ["1"] * 4))
    assert result.revenue_interval == (Decimal("2.0000"), Decimal("2.0000"))
    assert result.revenue_significant is True


def test_a_large_effect_on_revenue_is_significant_and_the_interval_covers_the_truth():
    rng = random.Random(7)
    treated = [round(rng.gauss(12, 4), 2) for _ in range(2000)]
    controls = [round(rng.gauss(10, 4), 2) for _ in range(2000)]
    result = lift(group_of(treated), group_of(controls))
    assert result.revenue_significant is True
    assert result.revenue_interval[0] < Decimal(2) < result.revenue_interval[1]


@pytest.mark.parametrize(("df", "expected"), [
    (1, 12.7062047), (2, 4.3026527), (5, 2.5705818), (10, 2.2281389), (30, 2.0422725), (1e7, 1.9599640),
])
def test_student_t_quantile_matches_tables(df, expected):
    assert student_t_quantile(0.975, df) == pytest.approx(expected, abs=1e-6)
    assert student_t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-6)


def test_student_t_quantile_other_levels_and_errors():
    assert student_t_quantile(0.95, 10) == pytest.approx(1.8124611, abs=1e-6)
    assert student_t_quantile(0.5, 3) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        student_t_quantile(1.0, 3)
    with pytest.raises(ValueError):
        student_t_quantile(0.9, 0)


@pytest.mark.parametrize(("customers", "converted"), [(-1, 0), (5, 6), (5, -1)])
def test_impossible_outcomes_are_refused(customers, converted):
    with pytest.raises(ValueError):
        GroupOutcome(customers, converted, Decimal(0), Decimal(0))


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95])
def test_confidence_must_be_a_fraction(confidence):
    with pytest.raises(ValueError):
        lift(outcome(10, 1), outcome(10, 2), confidence=confidence)
