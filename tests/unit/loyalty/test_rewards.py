"""The reward catalogue's pure rules (``crm_loyalty.domain.rewards``): availability, eligibility,
the per-customer limit, prices, the first fulfilment status and the transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from crm_loyalty.domain import rewards as rules
from crm_loyalty.domain.rewards import Reward

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MUG = Reward(reward_id="mug-2026", name="Mug", kind="gift", points_price=100)


def _refusal(reward: Reward, *, tier: str = "regular", segments: frozenset[str] = frozenset(), used: int = 0,
             quantity: int = 1, at: datetime = AT) -> str | None:
    refused = rules.refusal(reward, at=at, tier=tier, segments=segments, units_redeemed=used, quantity=quantity)
    return refused[0] if refused else None


def test_an_open_reward_for_everyone_is_refused_to_nobody():
    assert _refusal(MUG) is None


@pytest.mark.parametrize(("changes", "at"), [
    ({"active": False}, AT),
    ({"available_from": AT + timedelta(seconds=1)}, AT),
    ({"available_until": AT}, AT),                      # the end is exclusive
    ({"available_until": AT - timedelta(days=1)}, AT),
])
def test_inactive_or_outside_the_window_is_unavailable(changes, at):
    assert _refusal(_with(MUG, **changes), at=at) == "reward-unavailable"


def _with(reward: Reward, **changes) -> Reward:
    fields = {name: getattr(reward, name) for name in Reward.__slots__}
    return Reward(**{**fields, **changes})


def test_the_window_admits_its_start():
    assert _refusal(_with(MUG, available_from=AT, available_until=AT + timedelta(days=1))) is None


def test_tiers_and_segments_limit_who_may_redeem():
    for_vips = _with(MUG, eligible_tiers=("vip", "super_vip"))
    assert _refusal(for_vips, tier="regular") == "not-eligible"
    assert _refusal(for_vips, tier="vip") is None
    for_segments = _with(MUG, eligible_segments=("tea-lovers", "rfm:champions"))
    assert _refusal(for_segments) == "not-eligible"
    assert _refusal(for_segments, segments=frozenset({"rfm:champions", "other"})) is None
    both = _with(MUG, eligible_tiers=("vip",), eligible_segments=("tea-lovers",))
    assert _refusal(both, tier="vip", segments=frozenset({"x"})) == "not-eligible"
    assert _refusal(both, tier="vip", segments=frozenset({"tea-lovers"})) is None


def test_the_per_customer_limit_counts_units_against_the_quantity_asked():
    limited = _with(MUG, per_customer_limit=3, limit_period_days=30)
    assert _refusal(limited, used=1, quantity=2) is None
    assert _refusal(limited, used=2, quantity=2) == "limit-reached"
    assert _refusal(limited, used=3) == "limit-reached"
    assert rules.limit_counted_since(limited, AT) == AT - timedelta(days=30)
    assert rules.limit_counted_since(_with(MUG, per_customer_limit=1), AT) is None  # lifetime
    assert rules.limit_left(MUG, 99) is None


def test_unavailability_is_said_before_eligibility_and_eligibility_before_the_limit():
    everything_wrong = _with(MUG, active=False, eligible_tiers=("vip",), per_customer_limit=1)
    assert _refusal(everything_wrong, used=5) == "reward-unavailable"
    assert _refusal(_with(everything_wrong, active=True), used=5) == "not-eligible"


def test_prices_multiply_by_the_quantity():
    points_and_cash = _with(MUG, points_price=150, cash_price=Decimal("4.50"), cash_currency="CNY")
    assert rules.points_for(points_and_cash, 3) == 450
    assert rules.cash_due(points_and_cash, 3) == Decimal("13.50")
    assert rules.cash_due(MUG, 3) is None


def test_gifts_start_requested_and_digital_kinds_delivered():
    assert rules.first_status("gift") == "requested"
    assert {rules.first_status(kind) for kind in ("cash_voucher", "coupon", "free_shipping")} == {"delivered"}


@pytest.mark.parametrize(("current", "wanted"), [
    ("requested", "shipped"), ("requested", "cancelled"), ("shipped", "delivered"), ("shipped", "cancelled")])
def test_allowed_transitions(current, wanted):
    assert rules.transition("gift", current, wanted) is True


@pytest.mark.parametrize(("current", "wanted"), [
    ("requested", "delivered"), ("shipped", "requested"), ("delivered", "cancelled"), ("delivered", "shipped"),
    ("cancelled", "shipped"), ("cancelled", "delivered")])
def test_refused_transitions(current, wanted):
    with pytest.raises(rules.InvalidTransition):
        rules.transition("gift", current, wanted)


def test_the_same_status_again_is_a_no_op_even_when_final():
    assert rules.transition("gift", "shipped", "shipped") is False
    assert rules.transition("gift", "cancelled", "cancelled") is False
    assert rules.transition("coupon", "delivered", "delivered") is False


def test_digital_rewards_cannot_be_cancelled():
    with pytest.raises(rules.InvalidTransition, match="digital"):
        rules.transition("free_shipping", "delivered", "cancelled")


def test_a_spec_is_checked_as_a_whole():
    base = {"kind": "gift", "cash_price": None, "cash_currency": None, "per_customer_limit": None,
            "limit_period_days": None, "available_from": None, "available_until": None, "coupon_pool_id": None}
    assert rules.spec_problem(base) is None
    assert "coupon_pool_id" in rules.spec_problem({**base, "kind": "coupon"})
    assert rules.spec_problem({**base, "kind": "coupon", "coupon_pool_id": "p-1"}) is None
    assert "together" in rules.spec_problem({**base, "cash_price": Decimal(1)})
    assert "per_customer_limit" in rules.spec_problem({**base, "limit_period_days": 7})
    assert "before" in rules.spec_problem({**base, "available_from": AT, "available_until": AT})
    assert "kind" in rules.spec_problem({**base, "kind": "jewel"})
