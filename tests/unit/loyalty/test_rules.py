"""Earning rules beyond spend, as pure decisions: windows, caps, minimums, the referral fraud guard
and the blind index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from crm_loyalty.domain.ledger import Book
from crm_loyalty.domain.members import Member
from crm_loyalty.domain.programme import DEFAULT_PROGRAMME, Programme
from crm_loyalty.domain.rules import (
    Fingerprints,
    FirstOrderRule,
    ReferralRule,
    ReviewRule,
    SignupRule,
    TierUpRule,
    first_order_points,
    referral_award,
    referral_refusal,
    review_points,
    review_subject,
    signup_points,
)
from crm_loyalty.usecases.common import apply_tier
from pydantic import ValidationError

T = datetime(2026, 11, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def test_every_rule_is_off_by_default_so_the_default_programme_earns_as_before():
    rules = DEFAULT_PROGRAMME.rules
    assert not any(r.enabled for r in (rules.signup, rules.first_order, rules.review, rules.referral, rules.tier_up))
    assert signup_points(rules.signup, T) == 0
    assert first_order_points(rules.first_order, T, "CNY", Decimal(100)) == 0
    assert review_points(rules.review, T, {"sku": "TEA-1"}, []) == 0
    assert referral_award(rules.referral, T, "CNY", Decimal(100), []).status == "refused"
    assert rules.tier_up.points_for("vip", T) == 0
    # Versions saved before the rules existed read the same.
    assert Programme.model_validate({}).rules == rules


def test_a_rule_grants_only_inside_its_window():
    rule = SignupRule(enabled=True, points=50, starts_at=T, ends_at=T + DAY)
    assert signup_points(rule, T - timedelta(seconds=1)) == 0
    assert signup_points(rule, T) == 50
    assert signup_points(rule, T + DAY - timedelta(seconds=1)) == 50
    assert signup_points(rule, T + DAY) == 0
    assert signup_points(rule.model_copy(update={"enabled": False}), T) == 0


def test_first_order_minimum_is_in_one_currency():
    rule = FirstOrderRule(enabled=True, points=100, min_amount=Decimal(50), currency="CNY")
    assert first_order_points(rule, T, "CNY", Decimal(50)) == 100
    assert first_order_points(rule, T, "CNY", Decimal("49.99")) == 0
    assert first_order_points(rule, T, "USD", Decimal(500)) == 0
    assert first_order_points(FirstOrderRule(enabled=True, points=100), T, "USD", Decimal(1)) == 100


def test_review_needs_a_product_and_the_minimum_length_and_is_capped_per_rolling_period():
    rule = ReviewRule(enabled=True, points=20, max_per_period=2, period_days=7, min_length=10)
    good = {"sku": "TEA-1", "text": "lovely tea, would buy again"}
    assert review_subject({"product_sku": " TEA-2 "}) == "TEA-2"
    assert review_subject({"rating": 5}) is None and review_points(rule, T, {"text": "x" * 20}, []) == 0
    assert review_points(rule, T, {"sku": "TEA-1", "text": "short"}, []) == 0
    assert review_points(rule, T, good, []) == 20
    assert review_points(rule, T, good, [T - DAY]) == 20
    assert review_points(rule, T, good, [T - DAY, T - 2 * DAY]) == 0
    assert review_points(rule, T, good, [T - 7 * DAY, T - 8 * DAY]) == 20  # those have left the period


def test_referral_refusals_self_and_shared_fingerprints_and_unknown_or_erased_referrer():
    email, phone, card = ("email", b"e" * 32), ("phone", b"p" * 32), ("payment", b"c" * 32)
    assert referral_refusal("c-1", "c-1", set(), set()) == "self-referral"
    assert referral_refusal("c-1", "c-2", {email}, {email, phone}) == "same-email"
    assert referral_refusal("c-1", "c-2", {phone}, {phone}) == "same-phone"
    assert referral_refusal("c-1", "c-2", {card, ("email", b"x" * 32)}, {card}) == "same-payment"
    assert referral_refusal("c-1", "c-2", {email}, {phone}, referrer_known=False) == "referrer-unknown"
    assert referral_refusal("c-1", "c-2", set(), set(), referrer_erased=True) == "referrer-erased"
    assert referral_refusal("c-1", "c-2", {email}, {phone, card}) is None


def test_referral_award_minimum_and_the_referrers_cap():
    rule = ReferralRule(enabled=True, referrer_points=300, referee_points=100, min_order_amount=Decimal(80),
                        currency="CNY", max_referrals_per_referrer_per_period=2, period_days=30)
    assert referral_award(rule, T, "CNY", Decimal(100), []) == referral_award(rule, T, "CNY", Decimal(80), [T])
    paid = referral_award(rule, T, "CNY", Decimal(100), [])
    assert (paid.referee_points, paid.referrer_points, paid.status, paid.reason) == (100, 300, "paid", None)
    small = referral_award(rule, T, "CNY", Decimal(79), [])
    assert (small.status, small.reason, small.referee_points) == ("refused", "first-order-below-minimum", 0)
    capped = referral_award(rule, T, "CNY", Decimal(100), [T - DAY, T - 2 * DAY])
    assert (capped.referee_points, capped.referrer_points, capped.reason) == (100, 0, "referrer-cap-reached")
    assert referral_award(rule, T, "CNY", Decimal(100), [T - 31 * DAY, T - 40 * DAY]).referrer_points == 300


@pytest.mark.parametrize("config", [
    {"signup": {"points": -1}},
    {"review": {"period_days": 0}},
    {"first_order": {"min_amount": "10"}},                      # a minimum needs its currency
    {"referral": {"min_order_amount": "10", "currency": "cny"}},
    {"tier_up": {"points": {"gold": 100}}},                      # no such tier
    {"signup": {"starts_at": "2026-11-02T00:00:00Z", "ends_at": "2026-11-01T00:00:00Z"}},
    {"signup": {"starts_at": "2026-11-02T00:00:00"}},            # no timezone
    {"signup": {"bonus": 1}},                                    # unknown field
])
def test_a_bad_rules_section_is_refused(config):
    with pytest.raises(ValidationError):
        Programme.model_validate({"rules": config})


def test_fingerprints_are_keyed_and_normalised():
    prints, other = Fingerprints(b"k" * 32), Fingerprints(b"j" * 32)
    assert prints.digest("email", " Ann@Example.COM ") == prints.digest("email", "ann@example.com")
    assert prints.digest("phone", "+86 138-0013-8000") == prints.digest("phone", "8613800138000")
    assert prints.digest("email", "ann@example.com") != other.digest("email", "ann@example.com")
    assert prints.digest("email", "8613800138000") != prints.digest("phone", "8613800138000")
    assert prints.digest("phone", "n/a") is None and prints.digest("email", "  ") is None
    digests = prints.of(email="ann@example.com", phone=None)
    assert [kind for kind, _ in digests] == ["email"] and len(digests[0][1]) == 32
    assert b"ann" not in digests[0][1]


def _member(tier: str = "regular") -> Member:
    return Member(Book("c-1", 0, 0, 0, 0), tier, T - DAY, None, None, None, None)


def test_an_upgrade_owes_the_tier_up_bonus_of_the_tier_reached_only_when_the_rule_says_so():
    rules = DEFAULT_PROGRAMME.rules.model_copy(update={"tier_up": TierUpRule(enabled=True, points={"vip": 200})})
    programme = DEFAULT_PROGRAMME.model_copy(update={"rules": rules})
    member = _member()
    apply_tier(member, programme, Decimal(6000), 6, T, allow_downgrade=False)
    assert member.tier == "vip" and member.tier_ups == [("vip", T, 200, 12)]
    straight_to_the_top = _member()
    apply_tier(straight_to_the_top, programme, Decimal(30000), 20, T, allow_downgrade=False)
    assert straight_to_the_top.tier == "super_vip" and straight_to_the_top.tier_ups == []  # no points for it
    default = _member()
    apply_tier(default, DEFAULT_PROGRAMME, Decimal(6000), 6, T, allow_downgrade=False)
    assert default.tier == "vip" and default.tier_ups == []
