"""Control groups and the global holdout: stable, in proportion, independent between campaigns."""

from __future__ import annotations

import uuid

import pytest
from crm_campaigns.domain.groups import assign_group, unit_interval

CUSTOMERS = [str(uuid.UUID(int=i * 2_654_435_761 + 17)) for i in range(100_000)]


def test_unit_interval_is_deterministic_and_in_range():
    values = [unit_interval("c", customer) for customer in CUSTOMERS[:1000]]
    assert all(0.0 <= value < 1.0 for value in values)
    assert values == [unit_interval("c", customer) for customer in CUSTOMERS[:1000]]
    assert unit_interval("a", "bc") != unit_interval("ab", "c")


def test_unit_interval_is_uniform():
    values = [unit_interval("u", customer) for customer in CUSTOMERS]
    for bucket in range(10):
        share = sum(bucket / 10 <= value < (bucket + 1) / 10 for value in values) / len(values)
        assert share == pytest.approx(0.1, abs=0.005)


def test_assignment_is_stable():
    first = [assign_group("camp-1", customer, 0.1, 0.05) for customer in CUSTOMERS[:5000]]
    again = [assign_group("camp-1", customer, 0.1, 0.05) for customer in CUSTOMERS[:5000]]
    assert first == again


def test_shares_within_tolerance_over_100k_customers():
    groups = [assign_group("camp-1", customer, 0.2, 0.05) for customer in CUSTOMERS]
    n = len(groups)
    holdout = groups.count("holdout") / n
    control = groups.count("control") / n
    assert holdout == pytest.approx(0.05, abs=0.004)
    # control is drawn from those not held out
    assert control == pytest.approx(0.95 * 0.2, abs=0.006)
    assert groups.count("treatment") / n == pytest.approx(0.95 * 0.8, abs=0.006)


def test_holdout_depends_on_the_customer_only():
    held = {customer for customer in CUSTOMERS[:20_000] if assign_group("camp-1", customer, 0.1, 0.05) == "holdout"}
    for campaign in ("camp-2", "camp-3"):
        again = {customer for customer in CUSTOMERS[:20_000]
                 if assign_group(campaign, customer, 0.5, 0.05) == "holdout"}
        assert again == held
    other_salt = {customer for customer in CUSTOMERS[:20_000]
                  if assign_group("camp-1", customer, 0.1, 0.05, holdout_salt="2027") == "holdout"}
    assert len(other_salt & held) < 0.2 * len(held)


def test_control_groups_are_independent_between_campaigns():
    share = 0.2
    one = {c for c in CUSTOMERS if assign_group("camp-1", c, share) == "control"}
    two = {c for c in CUSTOMERS if assign_group("camp-2", c, share) == "control"}
    # independent draws: the overlap is share² of everybody, not share
    assert len(one & two) / len(CUSTOMERS) == pytest.approx(share * share, abs=0.004)


def test_raising_a_share_only_adds_customers_to_the_group():
    small = {c for c in CUSTOMERS[:20_000] if assign_group("camp-1", c, 0.1) == "control"}
    large = {c for c in CUSTOMERS[:20_000] if assign_group("camp-1", c, 0.3) == "control"}
    assert small < large


def test_extreme_shares():
    assert {assign_group("camp", c, 0.0) for c in CUSTOMERS[:1000]} == {"treatment"}
    assert {assign_group("camp", c, 1.0) for c in CUSTOMERS[:1000]} == {"control"}
    assert {assign_group("camp", c, 1.0, holdout_share=1.0) for c in CUSTOMERS[:1000]} == {"holdout"}


@pytest.mark.parametrize(("control", "holdout"), [(-0.1, 0.0), (1.1, 0.0), (0.1, -0.01), (0.1, 2.0)])
def test_shares_out_of_range_are_errors(control, holdout):
    with pytest.raises(ValueError):
        assign_group("camp", "cust", control, holdout)


def test_the_formula_is_the_documented_one():
    # Other components may recompute groups: holdout from (salt, customer), control from (campaign, customer).
    customer = CUSTOMERS[42]
    threshold = unit_interval("global", customer)
    assert assign_group("camp", customer, 0.0, holdout_share=min(1.0, threshold + 1e-9)) == "holdout"
    assert assign_group("camp", customer, 0.0, holdout_share=threshold) == "treatment"
    threshold = unit_interval("camp", customer)
    assert assign_group("camp", customer, min(1.0, threshold + 1e-9)) == "control"
    assert assign_group("camp", customer, threshold) == "treatment"
