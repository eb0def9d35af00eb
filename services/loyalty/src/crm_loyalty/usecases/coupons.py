"""Coupons: pools (supervisors), issuing codes (supervisors, reward redemptions, win-back and
birthday rules, campaigns), validating a code for a cart (the storefront), and using and
releasing coupons as orders are paid and cancelled. None commits.

``issue_coupons`` is the one function every issuer calls. Codes are secrets: they are answered
once to the issuer and listed to their customer, never put in an event, a URL or a log line
(events carry the coupon id).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from crm_shared.errors import ConflictError, NotFoundError, PreconditionFailed, RuleViolation
from crm_shared.events.envelope import CloudEvent
from crm_shared.logging import get_logger

from crm_loyalty.domain.coupons import (
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
    validity,
)
from crm_loyalty.domain.earning import Line
from crm_loyalty.domain.events import SOURCE
from crm_loyalty.repository.coupons import POOL_COLUMNS
from crm_loyalty.usecases.common import Uow

log = get_logger(__name__)

COUPON_ISSUED = "crm.loyalty.coupon.issued"
COUPON_USED = "crm.loyalty.coupon.used"
COUPON_RELEASED = "crm.loyalty.coupon.released"
MAX_ISSUE = 1000
_INSERT_ATTEMPTS = 5  # a code collision is ~1 in 10^18 per code: a retry is a formality


@dataclass(frozen=True, slots=True)
class IssuedCoupon:
    coupon_id: str
    code: str
    pool_id: str
    customer_id: str | None
    valid_from: datetime
    valid_until: datetime | None


def pool_of(row: dict[str, Any]) -> Pool:
    return Pool(pool_id=row["pool_id"], discount_kind=row["discount_kind"], percent=row["percent"],
                amount=row["amount"], currency=row["currency"], min_spend=row["min_spend"],
                categories=tuple(row["categories"] or ()), valid_from=row["valid_from"],
                valid_until=row["valid_until"], validity_days=row["validity_days"],
                per_customer_limit=row["per_customer_limit"], global_limit=row["global_limit"],
                used_count=row["used_count"], active=row["active"])


def coupon_of(row: dict[str, Any]) -> Coupon:
    return Coupon(coupon_id=row["coupon_id"], pool_id=row["pool_id"], customer_id=row["customer_id"],
                  valid_from=row["valid_from"], valid_until=row["valid_until"], max_uses=row["max_uses"],
                  uses=row["uses"], status=row["status"])


# -- pools -----------------------------------------------------------------------------------------

async def create_pool(uow: Uow, pool: dict[str, Any], *, actor: str, at: datetime) -> dict[str, Any]:
    """A new pool (``POOL_COLUMNS``); 409 if its id is taken."""
    if not await uow.repo.insert_pool(pool, actor=actor, at=at):
        raise ConflictError(f"coupon pool {pool['pool_id']!r} exists", code="coupon-pool-exists")
    return await get_pool(uow, pool["pool_id"])


async def update_pool(uow: Uow, pool_id: str, pool: dict[str, Any], *, if_match: str | None,
                      at: datetime) -> dict[str, Any]:
    """Replace a pool's settings (its counts stay). Codes already issued keep their window; the
    discount, cart rules, limits and ``active`` apply to them from now on."""
    current = await uow.repo.pool(pool_id, lock=True)
    if current is None:
        raise NotFoundError.of("coupon pool", pool_id)
    if if_match is not None and if_match.strip('"W/') != str(current["version"]):
        raise PreconditionFailed(f"the pool is at version {current['version']}, not {if_match}; reload and retry")
    await uow.repo.update_pool({**{c: pool.get(c) for c in POOL_COLUMNS}, "pool_id": pool_id}, at=at)
    return await get_pool(uow, pool_id)


async def get_pool(uow: Uow, pool_id: str) -> dict[str, Any]:
    row = await uow.repo.pool(pool_id)
    if row is None:
        raise NotFoundError.of("coupon pool", pool_id)
    return row


async def list_pools(uow: Uow, limit: int, after: str = "") -> tuple[list[dict[str, Any]], str | None]:
    """A page of pools by id (as the reward catalogue is), and the cursor of the next (None: the last)."""
    rows = await uow.repo.pools(limit + 1, after)
    page = rows[:limit]
    return page, (page[-1]["pool_id"] if len(rows) > limit else None)


# -- issuing and revoking --------------------------------------------------------------------------

async def issue_coupons(uow: Uow, *, pool_id: str, customer_id: str | None, count: int, issued_by: str,
                        at: datetime) -> list[IssuedCoupon]:
    """Issue ``count`` codes from a pool: personal ones (``customer_id``: one use, that customer's)
    or generic ones (anyone, bounded by the pool's limits). ``issued_by`` says who and why:
    ``supervisor:<subject>``, ``reward:<redemption id>``, ``win_back``, ``birthday``,
    ``campaign:<id>``, ``service:<subject>``. Publishes ``crm.loyalty.coupon.issued`` per code
    (without the code). Locks the pool row: call it after locking any member accounts."""
    if not 1 <= count <= MAX_ISSUE:
        raise RuleViolation(f"count must be between 1 and {MAX_ISSUE}", code="unprocessable-content")
    row = await uow.repo.pool(pool_id, lock=True)
    if row is None:
        raise NotFoundError.of("coupon pool", pool_id)
    pool = pool_of(row)
    if not pool.active:
        raise RuleViolation(f"coupon pool {pool_id!r} is inactive", code="coupon-pool-inactive")
    valid_from, valid_until = validity(pool, at)
    if valid_until is not None and valid_until <= at:
        raise RuleViolation(f"coupon pool {pool_id!r} has ended", code="coupon-pool-ended")
    max_uses = 1 if customer_id is not None else None
    issued: list[IssuedCoupon] = []
    for _ in range(_INSERT_ATTEMPTS):
        wanted = {str(uuid.uuid4()): new_code(row["prefix"]) for _ in range(count - len(issued))}
        inserted = await uow.repo.insert_coupons(pool_id, list(wanted.items()), customer_id=customer_id,
                                                 issued_by=issued_by, issued_at=at, valid_from=valid_from,
                                                 valid_until=valid_until, max_uses=max_uses)
        issued.extend(IssuedCoupon(coupon_id, code, pool_id, customer_id, valid_from, valid_until)
                      for coupon_id, code in wanted.items() if coupon_id in inserted)
        if len(issued) == count:
            break
    else:
        raise ConflictError("could not draw unique codes; retry", code="coupon-code-collision")
    await uow.repo.count_issued(pool_id, count)
    await uow.publish([issued_event(c, issued_by, at) for c in issued])
    return issued


async def issue_rule_coupon(uow: Uow, pool_id: str, customer_id: str, issued_by: str,
                            at: datetime) -> IssuedCoupon | None:
    """One personal code for a rule (win-back, birthday); None, logged, when the programme names a
    pool that is missing, inactive or ended: a misconfigured pool must not stop the batch or job."""
    try:
        return (await issue_coupons(uow, pool_id=pool_id, customer_id=customer_id, count=1, issued_by=issued_by,
                                    at=at))[0]
    except (NotFoundError, RuleViolation) as refused:
        log.warning("the programme's coupon pool cannot issue", pool_id=pool_id, rule=issued_by, why=str(refused))
        return None


def issued_event(coupon: IssuedCoupon, issued_by: str, at: datetime) -> CloudEvent:
    return CloudEvent.new(type=COUPON_ISSUED, source=SOURCE, subject=coupon.customer_id or coupon.pool_id, data={
        "coupon_id": coupon.coupon_id, "pool_id": coupon.pool_id, "customer_id": coupon.customer_id,
        "issued_by": issued_by, "issued_at": at.isoformat(), "valid_from": coupon.valid_from.isoformat(),
        "valid_until": coupon.valid_until.isoformat() if coupon.valid_until else None})


async def revoke_coupon(uow: Uow, coupon_id: str, *, actor: str, reason: str | None, at: datetime) -> dict[str, Any]:
    """Revoke a code (idempotent): it can no longer be used; uses already applied stay."""
    found = (await uow.repo.lock_coupons([coupon_id])).get(coupon_id)
    if found is None:
        raise NotFoundError.of("coupon", coupon_id)
    await uow.repo.revoke_coupon(coupon_id, actor=actor, reason=reason, at=at)
    return await coupon_with_uses(uow, coupon_id)


# -- reading ---------------------------------------------------------------------------------------

async def coupon_with_uses(uow: Uow, coupon_id: str) -> dict[str, Any]:
    row = await uow.repo.coupon(coupon_id)
    if row is None:
        raise NotFoundError.of("coupon", coupon_id)
    return {**row, "uses_list": await uow.repo.uses_of_coupon(coupon_id)}


async def customer_coupons(uow: Uow, customer_id: str, limit: int) -> list[dict[str, Any]]:
    return await uow.repo.customer_coupons(customer_id, limit)


# -- validating a code for a cart (read-only) ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Validation:
    valid: bool
    coupon_id: str | None = None
    pool_id: str | None = None
    discount: Decimal | None = None
    currency: str | None = None
    free_shipping: bool = False
    reason: str | None = None
    detail: str | None = None


async def validate_code(uow: Uow, *, code: str, customer_id: str | None, cart: Cart, at: datetime) -> Validation:
    """What the code would take off this cart now, or why not. Changes nothing: the use is
    decided when the order is paid (another order may take the last use meanwhile)."""
    row = (await uow.repo.coupons_by_code([normalize_code(code)])).get(normalize_code(code))
    if row is None:
        return Validation(False, reason="not_found", detail="no such code")
    coupon = coupon_of(row)
    if coupon.customer_id is not None and coupon.customer_id != customer_id:
        # Said before anything else about the coupon: a code seen over someone's shoulder tells no more.
        return Validation(False, reason="not_this_customers", detail="this code belongs to another customer")
    pool = pool_of(await get_pool(uow, coupon.pool_id))
    uses = 0
    if customer_id is not None and pool.per_customer_limit is not None:
        uses = (await uow.repo.customer_pool_uses([(customer_id, pool.pool_id)])).get((customer_id, pool.pool_id), 0)
    outcome: Discount | Refusal | None = check(pool, coupon, customer_id=customer_id, at=at, customer_uses=uses)
    if outcome is None:
        outcome = discount(pool, cart)
    if isinstance(outcome, Refusal):
        return Validation(False, coupon_id=coupon.coupon_id, pool_id=pool.pool_id, reason=outcome.reason,
                          detail=outcome.detail)
    amount = cart.shipping if outcome.free_shipping else outcome.amount
    return Validation(True, coupon_id=coupon.coupon_id, pool_id=pool.pool_id, discount=amount,
                      currency=cart.currency, free_shipping=outcome.free_shipping)


# -- using coupons on paid orders, releasing them on cancellations ---------------------------------

@dataclass(frozen=True, slots=True)
class CouponOrder:
    """A paid order that names coupon codes."""

    order_id: str
    customer_id: str
    currency: str
    total_amount: Decimal  # before coupon discounts
    lines: tuple[Line, ...]
    codes: tuple[str, ...]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class CouponsApplied:
    discount: Decimal           # off total_amount, summed over the applied coupons
    lines: tuple[Line, ...]     # the order's lines with each line's share of the discount taken off


async def use_coupons(uow: Uow, orders: list[CouponOrder]) -> dict[str, CouponsApplied]:
    """Apply the codes of these paid orders (known orders already left out by the caller), each
    checked under its pool's and its coupon's row locks: every use is recorded, ``applied`` (the
    discount computed from the pool, counted against the limits) or ``refused`` with the reason.
    Codes that match no coupon are skipped. The caller has locked the members' accounts."""
    repo = uow.repo
    codes = {o.order_id: list(dict.fromkeys(normalize_code(c) for c in o.codes)) for o in orders}
    found = await repo.coupons_by_code([c for cs in codes.values() for c in cs])
    if not found:
        return {}
    pools = await repo.lock_pools([r["pool_id"] for r in found.values()])
    coupons = await repo.lock_coupons([r["coupon_id"] for r in found.values()])
    pool_used = {pool_id: row["used_count"] for pool_id, row in pools.items()}
    coupon_uses = {coupon_id: row["uses"] for coupon_id, row in coupons.items()}
    limited = [(o.customer_id, r["pool_id"]) for o in orders for c in codes[o.order_id]
               if (r := found.get(c)) is not None and pools[r["pool_id"]]["per_customer_limit"] is not None]
    customer_uses: dict[tuple[str, str], int] = defaultdict(int, await repo.customer_pool_uses(limited))
    uses: list[dict[str, Any]] = []
    results: dict[str, CouponsApplied] = {}
    coupon_deltas: dict[str, int] = defaultdict(int)
    pool_deltas: dict[str, int] = defaultdict(int)
    for order in orders:
        lines = list(order.lines)
        remaining = order.total_amount
        taken = Decimal(0)
        for code in codes[order.order_id]:
            if code not in found:
                log.info("an order named a code that matches no coupon", order_id=order.order_id)
                continue
            row = coupons[found[code]["coupon_id"]]
            pool = replace(pool_of(pools[row["pool_id"]]), used_count=pool_used[row["pool_id"]])
            coupon = replace(coupon_of(row), uses=coupon_uses[row["coupon_id"]])
            outcome: Discount | Refusal | None = check(
                pool, coupon, customer_id=order.customer_id, at=order.occurred_at,
                customer_uses=customer_uses[(order.customer_id, pool.pool_id)])
            if outcome is None:
                cart = Cart(order.currency, tuple(CartLine(line.sku, line.category, line.value) for line in lines),
                            subtotal=remaining)
                outcome = discount(pool, cart)
            use = {"coupon_id": coupon.coupon_id, "order_id": order.order_id, "customer_id": order.customer_id,
                   "currency": order.currency, "at": order.occurred_at}
            if isinstance(outcome, Refusal):
                uses.append({**use, "status": "refused", "reason": outcome.reason, "discount": Decimal(0)})
                continue
            amount = min(outcome.amount, remaining)
            if outcome.per_line:
                lines = [replace(line, value=line.value - cut) for line, cut in zip(lines, outcome.per_line,
                                                                                    strict=True)]
            remaining -= amount
            taken += amount
            coupon_uses[coupon.coupon_id] += 1
            pool_used[pool.pool_id] += 1
            customer_uses[(order.customer_id, pool.pool_id)] += 1
            coupon_deltas[coupon.coupon_id] += 1
            pool_deltas[pool.pool_id] += 1
            uses.append({**use, "status": "applied", "reason": None, "discount": amount})
        if any(u["order_id"] == order.order_id and u["status"] == "applied" for u in uses):
            results[order.order_id] = CouponsApplied(taken, tuple(lines))
    await repo.record_uses(uses)
    await repo.count_uses(coupon_deltas, pool_deltas)
    await uow.publish([use_event(COUPON_USED, {**u, "pool_id": coupons[u["coupon_id"]]["pool_id"]}, u["at"])
                       for u in uses if u["status"] == "applied"])
    return results


async def release_coupons(uow: Uow, order_ids: list[str], at: datetime) -> int:
    """Cancelled orders give their applied coupons back (usable again); a refund does not. The
    caller has locked the members' accounts. The number of uses released."""
    repo = uow.repo
    applied = await repo.applied_uses_of_orders(order_ids)
    if not applied:
        return 0
    await repo.lock_pools([u["pool_id"] for u in applied])
    await repo.lock_coupons([u["coupon_id"] for u in applied])
    coupon_deltas: dict[str, int] = defaultdict(int)
    pool_deltas: dict[str, int] = defaultdict(int)
    for use in applied:
        coupon_deltas[use["coupon_id"]] -= 1
        pool_deltas[use["pool_id"]] -= 1
    await repo.release_uses([(u["coupon_id"], u["order_id"]) for u in applied], at)
    await repo.count_uses(coupon_deltas, pool_deltas)
    await uow.publish([use_event(COUPON_RELEASED, u, at) for u in applied])
    return len(applied)


def use_event(type_: str, use: dict[str, Any], at: datetime) -> CloudEvent:
    """A coupon's use by an order, or its release: ids only, never the code (campaigns count them)."""
    return CloudEvent.new(type=type_, source=SOURCE, subject=use["customer_id"], data={
        "coupon_id": use["coupon_id"], "pool_id": use["pool_id"], "customer_id": use["customer_id"],
        "order_id": use["order_id"], "at": at.isoformat()})
