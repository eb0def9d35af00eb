"""The loyalty rules without a database: earning, refunds' shares, the book and its debt policy, tiers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from crm_loyalty.domain.discounts import HeldDiscount, period_start, settle
from crm_loyalty.domain.earning import Line, apportion, earn, line_target, money_value, months_later, share_target
from crm_loyalty.domain.ledger import AVAILABLE, CLOSED, PENDING, Book, InsufficientPoints, Lot
from crm_loyalty.domain.programme import Campaign, Earning, Programme, Tier, Tiers
from crm_loyalty.domain.tiers import decide
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
PROGRAMME = Programme()
REGULAR, VIP = PROGRAMME.tiers.levels[0], PROGRAMME.tiers.levels[1]


def three_items() -> list[Line]:
    return [Line("A", "tea", 1, Decimal("100")), Line("B", "tea", 1, Decimal("100")),
            Line("C", "cups", 1, Decimal("100"))]


def test_points_are_the_money_paid_times_rate_and_tier_multiplier():
    regular = earn(PROGRAMME, currency="CNY", total_amount=Decimal("300"), lines=three_items(),
                   points_value=Decimal(0), tier=REGULAR, paid_at=T0)
    vip = earn(PROGRAMME, currency="CNY", total_amount=Decimal("300"), lines=three_items(),
               points_value=Decimal(0), tier=VIP, paid_at=T0)
    assert regular.points == 300 and regular.line_points == (100, 100, 100)
    assert vip.points == 450 and sum(vip.line_points) == 450


def test_the_part_paid_with_points_earns_nothing():
    earned = earn(PROGRAMME, currency="CNY", total_amount=Decimal("300"), lines=three_items(),
                  points_value=Decimal("50"), tier=REGULAR, paid_at=T0)
    assert earned.money_paid == Decimal("250") and earned.points == 250


def test_category_and_campaign_bonuses_apply_only_to_their_lines_and_time_box():
    campaign = Campaign(id="spring", name="Spring", starts_at=T0 - timedelta(days=1), ends_at=T0 + timedelta(days=1),
                        extra_multiplier=Decimal(1), categories=["cups"])
    programme = Programme(earning=Earning(category_bonus={"tea": Decimal("0.5")}), campaigns=[campaign])
    during = earn(programme, currency="CNY", total_amount=Decimal("300"), lines=three_items(),
                  points_value=Decimal(0), tier=REGULAR, paid_at=T0)
    after = earn(programme, currency="CNY", total_amount=Decimal("300"), lines=three_items(),
                 points_value=Decimal(0), tier=REGULAR, paid_at=T0 + timedelta(days=2))
    assert during.line_points == (150, 150, 200) and during.campaigns == ("spring",)
    assert after.line_points == (150, 150, 100) and after.campaigns == ()


def test_caps_and_unconfigured_currencies():
    capped = Programme(earning=Earning(max_points_per_order=120))
    assert earn(capped, currency="CNY", total_amount=Decimal("300"), lines=three_items(), points_value=Decimal(0),
                tier=REGULAR, paid_at=T0).line_points == (40, 40, 40)
    assert earn(PROGRAMME, currency="USD", total_amount=Decimal("300"), lines=[], points_value=Decimal(0),
                tier=REGULAR, paid_at=T0).points == 0


def test_rounding_is_down_and_lines_add_up():
    earned = earn(PROGRAMME, currency="CNY", total_amount=Decimal("10.99"),
                  lines=[Line("A", None, 3, Decimal("10.99"))], points_value=Decimal(0), tier=VIP, paid_at=T0)
    assert earned.points == 16  # 10.99 × 1.5 = 16.485
    assert apportion(10, [Decimal(1)] * 3) == [4, 3, 3]


def test_refund_shares_are_cumulative_so_a_full_refund_takes_back_exactly_what_was_earned():
    assert [share_target(100, Decimal(p), Decimal(3)) for p in (1, 2, 3)] == [33, 66, 100]
    assert [line_target(100, q, 3) for q in (1, 2, 3, 4)] == [33, 66, 100, 100]


def test_money_value_and_month_arithmetic():
    assert money_value(250, 100) == Decimal("2.50")
    assert money_value(1, 100) == Decimal("0.01")
    assert months_later(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert months_later(datetime(2026, 3, 15, tzinfo=UTC), -12) == datetime(2025, 3, 15, tzinfo=UTC)


def test_tier_rules_are_validated():
    with pytest.raises(ValidationError, match="entry tier"):
        Tiers(levels=[Tier(name="vip", min_spend=Decimal(10))])
    with pytest.raises(ValidationError, match="lowest to the highest"):
        Tiers(levels=[Tier(name="regular"), Tier(name="b", min_spend=Decimal(10)),
                      Tier(name="c", min_spend=Decimal(5))])
    with pytest.raises(ValidationError, match="ends_at"):
        Campaign(id="x", name="x", starts_at=T0, ends_at=T0, extra_multiplier=Decimal(1))


def test_upgrade_at_once_and_downgrade_only_after_the_grace_period():
    tiers = PROGRAMME.tiers
    up = decide(tiers, current="regular", below_tier_since=None, spend=Decimal(6000), orders=5, at=T0,
                allow_downgrade=False)
    assert (up.tier, up.changed, up.upgraded) == ("vip", True, True)
    below = decide(tiers, current="vip", below_tier_since=None, spend=Decimal(100), orders=1, at=T0,
                   allow_downgrade=True)
    assert (below.tier, below.changed, below.below_tier_since) == ("vip", False, T0)
    later = decide(tiers, current="vip", below_tier_since=T0, spend=Decimal(100), orders=1,
                   at=T0 + timedelta(days=30), allow_downgrade=True)
    assert (later.tier, later.changed, later.upgraded) == ("regular", True, False)
    back = decide(tiers, current="vip", below_tier_since=T0, spend=Decimal(6000), orders=6, at=T0, allow_downgrade=True)
    assert (back.tier, back.below_tier_since) == ("vip", None)


def _check(book: Book) -> None:
    """Every invariant of a book: balances are the ledger sums and the lot sums; never negative."""
    lots = book.lots or []
    assert book.available == sum(m.available for m in book.movements) >= 0
    assert book.pending == sum(m.pending for m in book.movements) >= 0
    assert book.debt == sum(m.debt for m in book.movements) >= 0
    assert book.available == sum(lot.remaining for lot in lots if lot.state == AVAILABLE)
    assert book.pending == sum(lot.remaining for lot in lots if lot.state == PENDING)
    assert all(m.points == m.available + m.pending - m.debt for m in book.movements)
    assert book.debt == 0 or book.available == 0


def test_a_refund_after_spending_records_debt_that_new_points_pay_off_first():
    book = Book("c", lots=[])
    lot = book.earn_pending(100, order_id="o1", business_at=T0, available_at=T0, reason="paid")
    book.release(lot, at=T0, expiry_months=12, reason="window closed")
    book.spend("redeem", 80, at=T0, reason="gift")
    book.reverse(lot, 100, at=T0, reason="refunded")
    assert (book.available, book.debt) == (0, 80)
    book.credit("bonus", 50, at=T0, expiry_months=12, reason="bonus")
    assert (book.available, book.debt) == (0, 30)
    second = book.earn_pending(40, order_id="o2", business_at=T0, available_at=T0, reason="paid")
    book.release(second, at=T0, expiry_months=12, reason="window closed")
    assert (book.available, book.debt) == (10, 0)
    _check(book)


def test_spending_takes_the_oldest_expiry_first_and_never_more_than_available():
    book = Book("c", lots=[])
    late = book.credit("bonus", 10, at=T0 + timedelta(days=60), expiry_months=12, reason="b")
    early = book.credit("bonus", 10, at=T0, expiry_months=12, reason="a")
    taken = book.spend("redeem", 15, at=T0, reason="gift")
    assert [(lot, n) for lot, n in taken] == [(early, 10), (late, 5)]
    with pytest.raises(InsufficientPoints):
        book.spend("redeem", 6, at=T0, reason="gift")
    _check(book)


def test_points_given_back_return_to_their_lots():
    book = Book("c", lots=[])
    lot = book.credit("bonus", 100, at=T0, expiry_months=12, reason="b")
    lot.lot_id = 1
    spent = book.spend("redeem", 60, at=T0, reason="discount")
    book.give_back(spent, 60, at=T0, expiry_months=12, reason="order cancelled")
    assert (lot.remaining, lot.state, book.available) == (100, AVAILABLE, 100)
    _check(book)


OPERATIONS = st.lists(st.tuples(st.sampled_from(["earn", "release", "complete", "redeem", "refund", "bonus",
                                                 "deduct", "expire", "give_back"]),
                                st.integers(min_value=1, max_value=500), st.integers(min_value=0, max_value=50)),
                      min_size=1, max_size=1000)


@settings(max_examples=60, deadline=None)
@given(OPERATIONS)
def test_the_ledger_always_equals_the_balances_under_random_operations(operations):
    book = Book("c", lots=[])
    earned: list[tuple[Lot, int]] = []  # order lots and what they earned, for refunds
    spent: list[list[tuple[Lot, int]]] = []
    at = T0
    for number, (op, points, pick) in enumerate(operations):
        at += timedelta(hours=1)
        if op == "earn":
            earned.append((book.earn_pending(points, order_id=f"o{number}", business_at=at, available_at=at,
                                             reason="paid"), points))
        elif op in ("release", "complete") and earned:
            book.release(earned[pick % len(earned)][0], at=at, expiry_months=12, reason="released")
        elif op == "redeem" and book.available:
            spent.append(book.spend("redeem", min(points, book.available), at=at, reason="gift"))
        elif op == "refund" and earned:
            lot, points_earned = earned.pop(pick % len(earned))
            book.reverse(lot, min(points, points_earned), at=at, reason="refund")
        elif op == "bonus":
            book.credit("bonus", points, at=at, expiry_months=12, reason="bonus")
        elif op == "deduct":
            with pytest.raises(InsufficientPoints) if points > book.available else _nothing():
                book.spend("adjust", points, at=at, reason="deduct")
        elif op == "expire":
            for lot in [lot for lot in book.open_lots() if lot.state == AVAILABLE][:1]:
                book.expire(lot, at=at)
        elif op == "give_back" and spent:
            taken = spent.pop(pick % len(spent))
            still = [(lot, n) for lot, n in taken if lot.state != CLOSED or lot.remaining == 0]
            book.give_back(still, sum(n for _, n in still), at=at, expiry_months=12, reason="given back")
        _check(book)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- order discounts and agents' periods (domain/discounts.py) ---------------------------------------

def test_held_discounts_are_applied_oldest_first_up_to_the_share_and_in_the_order_s_currency():
    held = [HeldDiscount("r1", "CNY", Decimal("30.00")), HeldDiscount("r2", "CNY", Decimal("25.00")),
            HeldDiscount("r3", "USD", Decimal("1.00")), HeldDiscount("r4", "CNY", Decimal("20.00"))]
    result = settle(held, currency="CNY", total_amount=Decimal("100.00"), max_share=Decimal("0.5"))
    assert result.applied == ["r1", "r4"] and result.points_value == Decimal("50.00")
    assert result.voided == [("r2", "points may pay at most 50% of an order"), ("r3", "the order was paid in CNY")]
    assert settle([], currency="CNY", total_amount=Decimal(10), max_share=Decimal(1)).points_value == 0


def test_adjustment_periods_are_aligned_to_the_epoch():
    moment = datetime(2027, 3, 4, 17, 30, tzinfo=UTC)
    assert period_start(moment, 24) == datetime(2027, 3, 4, tzinfo=UTC)
    assert period_start(moment, 6) == datetime(2027, 3, 4, 12, tzinfo=UTC)
    assert period_start(datetime(2027, 3, 4, tzinfo=UTC), 24) == datetime(2027, 3, 4, tzinfo=UTC)
