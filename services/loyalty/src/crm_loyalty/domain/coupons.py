"""Coupons: codes, and what a coupon takes off a cart or an order. Pure rules, no I/O.

A pool is the template (percent off, an amount off in its currency, or free shipping; a minimum
spend; categories; a window; limits), a coupon one code issued from it. Every discount rounds
DOWN to the cent (the customer gets at most the stated discount) and never exceeds the eligible
subtotal: the lines in the pool's categories, or the whole cart when it names none.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Literal

# Crockford's base32 without I, L, O and U: nothing to misread (0/O, 1/I/L) when typed from a
# receipt. 16 symbols of 32 = 80 bits from ``secrets``: guessing one of a million live codes
# takes ~10^18 tries.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_SYMBOLS = 16
GROUP = 4
CENT = Decimal("0.01")

Reason = Literal["not_found", "not_started", "expired", "used_up", "minimum_not_met", "not_this_customers",
                 "wrong_currency", "no_eligible_items", "revoked"]
DiscountKind = Literal["percent", "amount", "free_shipping"]


def new_code(prefix: str | None = None) -> str:
    """A fresh random code, grouped for reading: ``[PREFIX-]XXXX-XXXX-XXXX-XXXX``."""
    symbols = "".join(secrets.choice(ALPHABET) for _ in range(CODE_SYMBOLS))
    groups = [symbols[i:i + GROUP] for i in range(0, CODE_SYMBOLS, GROUP)]
    return "-".join([prefix, *groups] if prefix else groups)


def normalize_code(code: str) -> str:
    """The stored form of a code as a person may type it: upper case, no spaces, dashes regrouped;
    the letters people confuse with digits read as those digits (Crockford: O→0, I/L→1)."""
    raw = "".join(code.split()).upper().replace("-", "")
    raw = raw.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))
    if len(raw) <= CODE_SYMBOLS:
        return "-".join(raw[i:i + GROUP] for i in range(0, len(raw), GROUP))
    prefix, body = raw[:-CODE_SYMBOLS], raw[-CODE_SYMBOLS:]
    return "-".join([prefix, *(body[i:i + GROUP] for i in range(0, CODE_SYMBOLS, GROUP))])


def floor_cent(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_FLOOR)


@dataclass(frozen=True, slots=True)
class Pool:
    pool_id: str
    discount_kind: DiscountKind
    percent: Decimal | None = None
    amount: Decimal | None = None
    currency: str | None = None
    min_spend: Decimal | None = None
    categories: tuple[str, ...] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    validity_days: int | None = None
    per_customer_limit: int | None = None
    global_limit: int | None = None
    used_count: int = 0
    active: bool = True


@dataclass(frozen=True, slots=True)
class Coupon:
    coupon_id: str
    pool_id: str
    customer_id: str | None
    valid_from: datetime
    valid_until: datetime | None
    max_uses: int | None
    uses: int
    status: str


@dataclass(frozen=True, slots=True)
class CartLine:
    sku: str
    category: str | None
    value: Decimal  # quantity × unit price, after any earlier coupon of the same order


@dataclass(frozen=True, slots=True)
class Cart:
    currency: str
    lines: tuple[CartLine, ...] = ()
    subtotal: Decimal | None = None  # when no lines are given: the whole cart
    shipping: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Discount:
    amount: Decimal                           # off the order, to the cent, down
    free_shipping: bool
    per_line: tuple[Decimal, ...] = field(default=())  # how ``amount`` splits over the cart's lines


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason
    detail: str


def validity(pool: Pool, issued_at: datetime) -> tuple[datetime, datetime | None]:
    """A code's window: from the pool's start (or issue), for ``validity_days`` from issue, never
    past the pool's end."""
    start = max(issued_at, pool.valid_from) if pool.valid_from else issued_at
    until = issued_at + timedelta(days=pool.validity_days) if pool.validity_days else None
    if pool.valid_until is not None:
        until = pool.valid_until if until is None else min(until, pool.valid_until)
    return start, until


def check(pool: Pool, coupon: Coupon, *, customer_id: str | None, at: datetime,
          customer_uses: int = 0) -> Refusal | None:
    """Whether this customer may use the coupon at ``at`` (the cart aside). ``customer_id`` None:
    a storefront asking about a generic code for a guest; the per-customer limit waits for the order."""
    if coupon.status != "active" or not pool.active:
        return Refusal("revoked", "this code was revoked" if coupon.status != "active" else "this offer has ended")
    if coupon.customer_id is not None and coupon.customer_id != customer_id:
        return Refusal("not_this_customers", "this code belongs to another customer")
    if at < coupon.valid_from:
        return Refusal("not_started", f"valid from {coupon.valid_from.isoformat()}")
    if coupon.valid_until is not None and at >= coupon.valid_until:
        return Refusal("expired", f"expired at {coupon.valid_until.isoformat()}")
    if coupon.max_uses is not None and coupon.uses >= coupon.max_uses:
        return Refusal("used_up", "this code has been used")
    if pool.global_limit is not None and pool.used_count >= pool.global_limit:
        return Refusal("used_up", "this offer has been used up")
    if customer_id is not None and pool.per_customer_limit is not None and customer_uses >= pool.per_customer_limit:
        return Refusal("used_up", "this customer has used this offer as often as it allows")
    return None


def discount(pool: Pool, cart: Cart) -> Discount | Refusal:
    """What the pool takes off this cart, or why it does not apply."""
    if pool.currency is not None and pool.currency != cart.currency:
        return Refusal("wrong_currency", f"this offer is in {pool.currency}")
    if cart.lines:
        eligible = [line.value if not pool.categories or line.category in pool.categories else Decimal(0)
                    for line in cart.lines]
        subtotal = sum(eligible, Decimal(0))
    else:
        eligible = []
        subtotal = Decimal(0) if pool.categories else (cart.subtotal or Decimal(0))
    if pool.categories and subtotal <= 0:
        return Refusal("no_eligible_items", f"nothing in the cart is in {', '.join(pool.categories)}")
    if pool.min_spend is not None and subtotal < pool.min_spend:
        return Refusal("minimum_not_met", f"needs {pool.min_spend} {pool.currency} of eligible items")
    if pool.discount_kind == "free_shipping":
        return Discount(Decimal(0), True, tuple(Decimal(0) for _ in cart.lines))
    if pool.discount_kind == "percent":
        amount = floor_cent(subtotal * (pool.percent or Decimal(0)) / 100)
    else:
        amount = floor_cent(min(pool.amount or Decimal(0), subtotal))
    amount = max(Decimal(0), min(amount, floor_cent(subtotal)))
    if not eligible:
        return Discount(amount, False)
    per_line = split(amount, eligible)
    # Lines priced below the cent may leave a cent unplaced: the discount is what the lines carry.
    return Discount(sum(per_line, Decimal(0)), False, per_line)


def split(amount: Decimal, weights: list[Decimal]) -> tuple[Decimal, ...]:
    """``amount`` in cents over lines by their value, largest remainder first, never more than a
    line's own value; sums to ``amount`` (which is at most the sum of the weights)."""
    total = sum(weights, Decimal(0))
    if amount <= 0 or total <= 0:
        return tuple(Decimal(0) for _ in weights)
    cents = int(amount / CENT)
    scaled = [Decimal(cents) * w / total for w in weights]
    shares = [int(s) for s in scaled]
    leftover = cents - sum(shares)
    for i in sorted(range(len(weights)), key=lambda i: (scaled[i] - shares[i], -i), reverse=True):
        if leftover <= 0:
            break
        if Decimal(shares[i] + 1) * CENT <= weights[i]:
            shares[i] += 1
            leftover -= 1
    return tuple(Decimal(share) * CENT for share in shares)


__all__ = ["ALPHABET", "CODE_SYMBOLS", "Cart", "CartLine", "Coupon", "Discount", "Pool", "Refusal", "check",
           "discount", "floor_cent", "new_code", "normalize_code", "split", "validity"]
