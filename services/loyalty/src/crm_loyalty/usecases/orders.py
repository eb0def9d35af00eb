"""Orders: paid orders earn (the hot path), completions release, cancellations and refunds take
back earned points and give back spent ones. One function per event batch; none commits.

Each batch locks the members' accounts, works on their books in memory (``domain/``) and writes
everything back with set-based SQL. Paid orders touch only the account row; refunds,
cancellations and completions also load the open lots.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from crm_shared.errors import ConflictError

from crm_loyalty.domain.discounts import HeldDiscount, settle
from crm_loyalty.domain.earning import Line, earn, line_target, share_target
from crm_loyalty.domain.members import Spent
from crm_loyalty.usecases import rules
from crm_loyalty.usecases.common import ProgrammeStore, Uow, apply_tier, give_back_spent, now, requalify, save
from crm_loyalty.usecases.coupons import CouponOrder, release_coupons, use_coupons


@dataclass(frozen=True, slots=True)
class OrderFact:
    """What an order event says, as plain values (``commerce.order.*``)."""

    order_id: str
    customer_id: str
    currency: str
    total_amount: Decimal
    occurred_at: datetime
    event_id: str
    traceparent: str | None = None
    lines: tuple[Line, ...] = ()                    # a paid order's items
    cancelled: bool = False                          # cancellation (else a refund), for returns
    refund_amount: Decimal = Decimal(0)
    refunded_items: tuple[tuple[str, int], ...] = ()  # (sku, quantity) of a refund
    payment_digest: bytes | None = None               # keyed digest of the payment token (earning rules)
    coupon_codes: tuple[str, ...] = ()               # a paid order's coupons (total_amount is before them)


async def orders_paid(uow: Uow, store: ProgrammeStore, orders: list[OrderFact]) -> None:
    """Earn pending points on each order once (whatever the event id), then re-evaluate tiers.
    The payer's held discounts on the order are tied to it (within the share cap) or voided."""
    repo = uow.repo
    known = await repo.known_orders(list({o.order_id for o in orders}))
    fresh: list[OrderFact] = []
    for order in orders:
        if order.order_id not in known:
            known.add(order.order_id)
            fresh.append(order)
    if not fresh:
        return
    timeline = await store.timeline(uow)
    current = timeline.current
    at = now()
    # The payers' accounts are locked before their held discounts are read: a redemption is
    # written under its member's account lock and refused once the order is known, so every
    # discount the payer took on the order is committed and seen here.
    members = await repo.lock_members([o.customer_id for o in fresh], entry_tier=current.tiers.levels[0].name, at=at)
    held = await repo.discounts_on_orders([(o.order_id, o.customer_id) for o in fresh], ("held",))
    held_on: dict[tuple[str | None, str], list[Spent]] = defaultdict(list)
    for spent in held.values():
        held_on[(spent.order_id, spent.customer_id)].append(spent)
    # Coupons after the accounts (lock order: accounts, pools, coupons); their discounts come off
    # the order's value before anything else, so points are earned on what is left.
    with_coupons = [CouponOrder(o.order_id, o.customer_id, o.currency, o.total_amount, o.lines, o.coupon_codes,
                                o.occurred_at) for o in fresh if o.coupon_codes]
    coupons = await use_coupons(uow, with_coupons) if with_coupons else {}
    stats = await repo.rolling_spend(list(members), current, max(at, max(o.occurred_at for o in fresh)))
    rows: dict[str, list[Any]] = defaultdict(list)
    applied: list[str] = []
    for data in fresh:
        member = members[data.customer_id]
        member.traceparent = data.traceparent
        version, programme = timeline.in_force_at(data.occurred_at)
        mine = held_on.get((data.order_id, data.customer_id), [])
        coupon = coupons.get(data.order_id)
        total = data.total_amount - coupon.discount if coupon else data.total_amount
        settlement = settle([HeldDiscount(s.redemption_id, s.currency, s.money_value or Decimal(0)) for s in mine],
                            currency=data.currency, total_amount=total,
                            max_share=programme.redemption.max_order_share)
        applied.extend(settlement.applied)
        if settlement.voided:
            await repo.load_lots([member])
            lots = await repo.lots_by_id(members, [lot_id for s in mine for lot_id, _ in s.lots])
            for redemption_id, why in settlement.voided:
                spent = held[redemption_id]
                await give_back_spent(uow, member, spent, lots, spent.points - spent.returned, at=data.occurred_at,
                                      expiry_months=programme.earning.expiry_months,
                                      reason=f"points off order {data.order_id} voided: {why}",
                                      event_id=data.event_id, void_reason=why)
        lines = list(coupon.lines if coupon else data.lines)
        earned = earn(programme, currency=data.currency, total_amount=total, lines=lines,
                      points_value=settlement.points_value, tier=programme.tiers.get(member.tier),
                      paid_at=data.occurred_at)
        available_at = data.occurred_at + timedelta(days=programme.earning.return_window_days)
        if earned.points:
            lot = member.book.earn_pending(earned.points, order_id=data.order_id, business_at=data.occurred_at,
                                           available_at=available_at, reason=f"order {data.order_id} paid",
                                           campaign=",".join(earned.campaigns) or None,
                                           event_id=data.event_id)
            if available_at <= at:  # an old payment: its return window has already closed
                member.book.release(lot, at=available_at, expiry_months=programme.earning.expiry_months,
                                    reason="return window closed")
        stored_lines = [{"sku": line.sku, "category": line.category, "quantity": line.quantity,
                         "value": str(line.value), "points": points, "refunded_qty": 0}
                        for line, points in zip(lines or [Line("*", None, 1, total)],
                                                earned.line_points, strict=True)]
        rows["order_ids"].append(data.order_id)
        rows["customer_ids"].append(data.customer_id)
        rows["statuses"].append("paid")
        rows["currencies"].append(data.currency)
        rows["totals"].append(total)
        rows["coupon_discounts"].append(coupon.discount if coupon else Decimal(0))
        rows["points_values"].append(settlement.points_value)
        rows["paid_ats"].append(data.occurred_at)
        rows["earned"].append(earned.points)
        rows["lines"].append(stored_lines)
        rows["versions"].append(version)
        rows["tiers"].append(member.tier)
        if data.currency == current.tiers.currency:
            spend, count = stats[data.customer_id]
            stats[data.customer_id] = (spend + total, count + 1)
        apply_tier(member, current, *stats[data.customer_id], data.occurred_at, allow_downgrade=False)
    await repo.apply_discounts(applied, at)
    await repo.insert_paid_orders(rows)
    await rules.orders_paid(uow, timeline, members, fresh)  # first-order and referral bonuses
    await save(uow, members.values())


async def orders_completed(uow: Uow, store: ProgrammeStore, orders: list[OrderFact]) -> None:
    """The return window closed: the order's pending points become available now."""
    repo = uow.repo
    order_ids = [o.order_id for o in orders]
    await repo.complete_orders(order_ids)
    pending = await repo.pending_lots_of_orders(order_ids)
    if not pending:
        return
    timeline = await store.timeline(uow)
    members = await repo.lock_members([customer_id for _, customer_id in pending.values()],
                                      entry_tier=timeline.current.tiers.levels[0].name, at=now(), create=False)
    lots = await repo.lots_by_id(members, [lot_id for lot_id, _ in pending.values()])
    for data in orders:
        found = pending.get(data.order_id)
        if found is None or found[0] not in lots:
            continue
        lot = lots[found[0]]
        member = members[found[1]]
        member.traceparent = data.traceparent
        at = min(data.occurred_at, lot.available_at or data.occurred_at)
        _, programme = timeline.in_force_at(lot.business_at)
        member.book.release(lot, at=at, expiry_months=programme.earning.expiry_months,
                            reason=f"order {data.order_id} completed")
    await save(uow, members.values())


async def orders_returned(uow: Uow, store: ProgrammeStore, orders: list[OrderFact]) -> None:
    """Cancellations and refunds: take back earned points in proportion to what came back (per
    line where items are given), and give back points that the member spent on the order."""
    repo = uow.repo
    timeline = await store.timeline(uow)
    members = await repo.lock_members([o.customer_id for o in orders], entry_tier=timeline.current.tiers.levels[0].name,
                                      at=now(), with_lots=True)
    known = await repo.orders_for_update(sorted({o.order_id for o in orders}))
    for data in orders:
        order = known.get(data.order_id)
        if order is not None and order["customer_id"] != data.customer_id:
            # Which member should lose or get back points is unknowable: a dead letter to look at.
            verb = "cancelled" if data.cancelled else "refunded"
            raise ConflictError(f"commerce.order.{verb} names another customer than the order's",
                                code="order-of-another-customer")
    # Only discounts the member took on their own order count: another customer's redemption
    # "off" this order id is theirs to settle (voided by the discount-holds job).
    spent = await repo.discounts_on_orders([(o.order_id, o.customer_id) for o in orders], ("held", "applied"))
    spent_on: dict[tuple[str | None, str], list[Spent]] = defaultdict(list)
    for entry in spent.values():
        spent_on[(entry.order_id, entry.customer_id)].append(entry)
    lots = await repo.lots_by_id(members, [lot_id for s in spent.values() for lot_id, _ in s.lots])
    touched: dict[str, None] = {}  # the orders to write back, in order
    for data in orders:
        member = members[data.customer_id]
        member.traceparent = data.traceparent
        order = known.get(data.order_id)
        if order is None:  # never paid here: remember it so a late "paid" earns nothing
            order = {"order_id": data.order_id, "customer_id": data.customer_id, "status": "placed",
                     "total_amount": data.total_amount, "refunded_amount": Decimal(0), "earned_points": 0,
                     "reversed_points": 0, "lines": []}
            known[data.order_id] = order
        if order["status"] == "cancelled":
            continue  # nothing is left to take back or give back
        total = order["total_amount"]
        lines = order["lines"]
        if data.cancelled:
            order["refunded_amount"] = total
            order["status"] = "cancelled"
            target = order["earned_points"]
        else:
            order["refunded_amount"] = min(total, order["refunded_amount"] + data.refund_amount)
            order["status"] = "refunded" if order["refunded_amount"] >= total else "partially_refunded"
            target = refund_target(order, lines, data.refunded_items)
        take_back = max(0, min(target, order["earned_points"]) - order["reversed_points"])
        if take_back:
            order_lot = next((lot for lot in member.book.open_lots()
                              if lot.kind == "earn" and lot.order_id == data.order_id), None)
            verb = "cancelled" if data.cancelled else "refunded"
            member.book.reverse(order_lot, take_back, at=data.occurred_at, reason=f"order {data.order_id} {verb}",
                                order_id=data.order_id, event_id=data.event_id)
            order["reversed_points"] += take_back
        _, programme = timeline.in_force_at(data.occurred_at)
        for entry in spent_on.get((data.order_id, data.customer_id), []):
            void_reason = None
            if entry.status == "held":  # the order was never paid here
                if not data.cancelled:
                    continue  # a refund of an unpaid order: the hold waits for the payment or its time
                owed, void_reason = entry.points - entry.returned, "the order was cancelled"
            elif entry.status == "applied":
                owed = share_target(entry.points, order["refunded_amount"], total) - entry.returned
            else:
                continue
            if owed <= 0:
                continue
            await give_back_spent(uow, member, entry, lots, owed, at=data.occurred_at,
                                  expiry_months=programme.earning.expiry_months,
                                  reason=f"points spent on order {data.order_id} given back",
                                  event_id=data.event_id, void_reason=void_reason)
        touched[data.order_id] = None
    # A cancelled order gives its coupons back (usable again); a refund keeps them used.
    await release_coupons(uow, [o.order_id for o in orders if o.cancelled], now())
    for order_id in touched:
        await repo.save_order(known[order_id], next(o.currency for o in orders if o.order_id == order_id))
    # A refund lowers the rolling spend: the member may fall below their tier (grace starts).
    await requalify(uow, members.values(), timeline.current, now())
    await save(uow, members.values())


def refund_target(order: dict[str, Any], lines: list[dict[str, Any]], refunded_items: tuple[tuple[str, int], ...]
                  ) -> int:
    """Points owed back after this refund: per line for the refunded items, else by amount."""
    earned, total = order["earned_points"], order["total_amount"]
    if order["refunded_amount"] >= total:
        return earned
    if refunded_items and lines and lines[0]["sku"] != "*":
        for sku, quantity in refunded_items:
            left = quantity
            for line in lines:
                if line["sku"] == sku and left:
                    room = line["quantity"] - line["refunded_qty"]
                    moved = min(room, left)
                    line["refunded_qty"] += moved
                    left -= moved
        by_items = sum(line_target(line["points"], line["refunded_qty"], line["quantity"]) for line in lines)
        return max(by_items, order["reversed_points"])
    return max(share_target(earned, order["refunded_amount"], total), order["reversed_points"])


async def order_owners(uow: Uow, orders: list[tuple[str, str]]) -> dict[str, str]:
    """Later events of a known order apply to the account that holds it: after an unmerge, an
    order paid under the duplicate's id while the merge was in force stays with the survivor, and
    so do its refund and completion. For ``(order id, customer id)`` pairs, the order ids whose
    events go to another customer, and that customer.

    Only an order that moved with a merge changes hands; any other order named under another
    customer than its payer is the batch's to refuse (dead-lettered)."""
    owners = await uow.repo.order_owners([order_id for order_id, _ in orders])
    moved = {(owners[order_id], customer_id) for order_id, customer_id in orders
             if owners.get(order_id, customer_id) != customer_id}
    if not moved:
        return {}
    related = await uow.repo.ever_merged(moved)
    return {order_id: owners[order_id] for order_id, customer_id in orders
            if frozenset((owners.get(order_id, customer_id), customer_id)) in related}

