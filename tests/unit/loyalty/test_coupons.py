"""Coupon rules (crm_loyalty.domain.coupons): codes, the discount math (percent, amount, free
shipping, categories; rounding down to the cent, never above the eligible subtotal) and the checks
with their reasons."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from crm_loyalty.domain.coupons import (
    ALPHABET,
    Cart,
    CartLine,
    Coupon,
    Discount,
    Pool,
    Refusal,
    check,
    discount,
    new_code,
    normalize_code,
    split,
    validity,
)

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
D = Decimal


def cart(*lines: tuple[str | None, str], currency: str = "CNY", shipping: str = "0") -> Cart:
    return Cart(currency, tuple(CartLine(f"s{i}", category, D(value)) for i, (category, value) in enumerate(lines)),
                shipping=D(shipping))


def coupon(**kw) -> Coupon:
    base = dict(coupon_id="c1", pool_id="p", customer_id=None, valid_from=T0, valid_until=T0 + timedelta(days=30),
                max_uses=None, uses=0, status="active")
    return Coupon(**{**base, **kw})


# -- codes -----------------------------------------------------------------------------------------

def test_codes_are_16_symbols_of_an_unambiguous_alphabet_grouped_by_four():
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}", code), code
    assert len(ALPHABET) == 32 and not set("ILOU") & set(ALPHABET)  # 16 × 5 bits = 80 bits
    assert new_code("WB").startswith("WB-") and len(new_code("WB")) == 3 + 19


def test_a_code_is_found_however_it_is_typed():
    code = new_code("XMAS")
    assert normalize_code(code) == code
    assert normalize_code(code.lower().replace("-", " ")) == code
    assert normalize_code("  " + code.replace("-", "") + " ") == code
    assert normalize_code("abcd-efgh-jkmn-pq00".replace("0", "o")) == "ABCD-EFGH-JKMN-PQ00"
    assert normalize_code("1111-2222-3333-4444".replace("1", "l")) == "1111-2222-3333-4444"


# -- discounts -------------------------------------------------------------------------------------

def test_percent_off_rounds_down_to_the_cent():
    pool = Pool("p", "percent", percent=D("15"))
    result = discount(pool, cart((None, "33.33")))
    assert result == Discount(D("4.99"), False, (D("4.99"),))  # 4.9995 → 4.99, never 5.00
    assert discount(Pool("p", "percent", percent=D("100")), cart((None, "10.005"))).amount == D("10.00")


def test_an_amount_off_is_capped_at_the_eligible_subtotal_and_needs_its_currency():
    pool = Pool("p", "amount", amount=D("50"), currency="CNY")
    assert discount(pool, cart((None, "30.00"))).amount == D("30.00")
    assert discount(pool, cart((None, "80.00"))).amount == D("50.00")
    assert discount(pool, cart((None, "80.00"), currency="EUR")) == Refusal("wrong_currency", "this offer is in CNY")
    assert discount(pool, Cart("CNY", subtotal=D("12.34"))).amount == D("12.34")


def test_categories_limit_both_the_discount_and_the_minimum_spend():
    pool = Pool("p", "percent", percent=D("10"), currency="CNY", min_spend=D("100"), categories=("tea",))
    result = discount(pool, cart(("tea", "60.00"), ("cups", "500.00"), ("tea", "40.00")))
    assert isinstance(result, Discount)
    assert result.amount == D("10.00") and result.per_line == (D("6.00"), D("0"), D("4.00"))
    short = discount(pool, cart(("tea", "99.99"), ("cups", "500.00")))
    assert isinstance(short, Refusal) and short.reason == "minimum_not_met"
    none = discount(pool, cart(("cups", "500.00")))
    assert isinstance(none, Refusal) and none.reason == "no_eligible_items"
    assert discount(pool, Cart("CNY", subtotal=D("500"))).reason == "no_eligible_items"  # no lines to tell


def test_free_shipping_takes_nothing_off_the_items():
    result = discount(Pool("p", "free_shipping"), cart((None, "20.00"), shipping="8.00"))
    assert result.free_shipping and result.amount == 0


def test_a_split_over_lines_sums_to_the_discount_and_never_exceeds_a_line():
    parts = split(D("10.00"), [D("3.33"), D("3.33"), D("3.34")])
    assert sum(parts) == D("10.00") and all(p <= w for p, w in zip(parts, [D("3.33"), D("3.33"), D("3.34")],
                                                                        strict=True))
    parts = split(D("1.00"), [D("1"), D("1"), D("1")])
    assert sum(parts) == D("1.00") and sorted(parts) == [D("0.33"), D("0.33"), D("0.34")]


# -- checks ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pool", "the_coupon", "kwargs", "reason"), [
    (Pool("p", "percent", percent=D(5)), coupon(status="revoked"), {}, "revoked"),
    (Pool("p", "percent", percent=D(5), active=False), coupon(), {}, "revoked"),
    (Pool("p", "percent", percent=D(5)), coupon(customer_id="c-a"), {"customer_id": "c-b"}, "not_this_customers"),
    (Pool("p", "percent", percent=D(5)), coupon(customer_id="c-a"), {"customer_id": None}, "not_this_customers"),
    (Pool("p", "percent", percent=D(5)), coupon(), {"at": T0 - timedelta(seconds=1)}, "not_started"),
    (Pool("p", "percent", percent=D(5)), coupon(), {"at": T0 + timedelta(days=30)}, "expired"),
    (Pool("p", "percent", percent=D(5)), coupon(max_uses=1, uses=1), {}, "used_up"),
    (Pool("p", "percent", percent=D(5), global_limit=3, used_count=3), coupon(), {}, "used_up"),
    (Pool("p", "percent", percent=D(5), per_customer_limit=2), coupon(), {"customer_id": "c-a", "customer_uses": 2},
     "used_up"),
])
def test_each_refusal_has_its_reason(pool, the_coupon, kwargs, reason):
    arguments = {"customer_id": "c-a", "at": T0 + timedelta(days=1), **kwargs}
    refusal = check(pool, the_coupon, **arguments)
    assert refusal is not None and refusal.reason == reason


def test_a_usable_coupon_passes_and_a_guest_is_not_held_to_the_per_customer_limit():
    pool = Pool("p", "percent", percent=D(5), per_customer_limit=1, global_limit=10, used_count=9)
    assert check(pool, coupon(max_uses=2, uses=1), customer_id="c-a", at=T0, customer_uses=0) is None
    assert check(pool, coupon(), customer_id=None, at=T0, customer_uses=5) is None


def test_a_codes_window_runs_from_issue_for_its_days_capped_by_the_pools_end():
    pool = Pool("p", "percent", percent=D(5), validity_days=30, valid_until=T0 + timedelta(days=10))
    assert validity(pool, T0) == (T0, T0 + timedelta(days=10))
    assert validity(Pool("p", "percent", percent=D(5), validity_days=30), T0) == (T0, T0 + timedelta(days=30))
    later = Pool("p", "percent", percent=D(5), valid_from=T0 + timedelta(days=3))
    assert validity(later, T0) == (T0 + timedelta(days=3), None)
