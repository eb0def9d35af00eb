"""Event handlers of the loyalty service, registered in one table by event type.

Each handler gets every event of its type from one stage of a batch (per customer in order) and
applies them in the consumer's transaction: lock the members' accounts, work on their books in
memory (``domain/``), write everything back with set-based SQL (``repository.py``). Paid orders
are the hot path and touch only the account row; refunds, cancellations and completions also
load the open lots. Handlers never commit.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from crm_shared.bus import HandlerTable, Inbound
from crm_shared.bus.consumer import HandlerFailed
from crm_shared.events.catalogue import (
    TOPIC_CHURN,
    TOPIC_CUSTOMERS,
    TOPIC_ORDERS,
    TOPIC_PROFILE,
    ChurnRiskChangedData,
    CustomerData,
    OrderData,
    OrderRefundedData,
    ProfileBirthdayChangedData,
    ProfileCustomerErasedData,
)
from crm_shared.merges import resolving_merged
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_loyalty.domain.discounts import HeldDiscount, settle
from crm_loyalty.domain.earning import Line, earn, line_target, share_target
from crm_loyalty.domain.events import notification
from crm_loyalty.erasure import erase_members
from crm_loyalty.merges import MergeHandlers, by_order_owner
from crm_loyalty.repository import (
    ProgrammeStore,
    Spent,
    apply_discounts,
    discounts_on_orders,
    load_lots,
    lock_members,
    lots_by_id,
    rolling_spend,
    save_members,
)
from crm_loyalty.usecases import apply_tier, give_back_spent

TOPICS = (TOPIC_CUSTOMERS, TOPIC_ORDERS, TOPIC_PROFILE, TOPIC_CHURN)
BIRTHDAY_YEAR = 2000  # accounts.birthday keeps the month and day only (see month_and_day)

_KNOWN_ORDERS = text("SELECT order_id FROM orders WHERE order_id = ANY(CAST(:ids AS text[]))")
_INSERT_ORDERS = text("""
    INSERT INTO orders (order_id, customer_id, status, currency, total_amount, points_value, paid_at,
                        earned_points, lines, programme_version, tier)
    SELECT * FROM unnest(CAST(:order_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:statuses AS text[]),
                         CAST(:currencies AS text[]), CAST(:totals AS numeric[]), CAST(:points_values AS numeric[]),
                         CAST(:paid_ats AS timestamptz[]), CAST(:earned AS bigint[]), CAST(:lines AS jsonb[]),
                         CAST(:versions AS integer[]), CAST(:tiers AS text[]))
    ON CONFLICT (order_id) DO NOTHING
""")
_PENDING_LOTS_OF_ORDERS = text("""
    SELECT lot_id, customer_id, order_id FROM lots
    WHERE order_id = ANY(CAST(:ids AS text[])) AND kind = 'earn' AND state = 'pending'
""")
_COMPLETE_ORDERS = text("""
    UPDATE orders SET status = 'completed' WHERE order_id = ANY(CAST(:ids AS text[])) AND status = 'paid'
""")
_ORDERS_FOR_UPDATE = text("""
    SELECT order_id, customer_id, status, total_amount, refunded_amount, earned_points, reversed_points, lines
    FROM orders WHERE order_id = ANY(CAST(:ids AS text[])) ORDER BY order_id FOR UPDATE
""")
_SAVE_ORDER = text("""
    INSERT INTO orders (order_id, customer_id, status, currency, total_amount, refunded_amount, reversed_points, lines)
    VALUES (:order_id, :customer_id, :status, :currency, :total, :refunded, :reversed, CAST(:lines AS jsonb))
    ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, refunded_amount = excluded.refunded_amount,
        reversed_points = excluded.reversed_points, lines = excluded.lines
""")
_SET_BIRTHDAYS = text("""
    UPDATE accounts a SET birthday = t.birthday, updated_at = now()
    FROM unnest(CAST(:ids AS text[]), CAST(:birthdays AS date[])) AS t(customer_id, birthday)
    WHERE a.customer_id = t.customer_id AND a.erased_at IS NULL
""")
_LAST_WIN_BACK = text("""
    SELECT customer_id, max(granted_at) AS last FROM win_backs
    WHERE customer_id = ANY(CAST(:ids AS text[])) GROUP BY customer_id
""")
_RECORD_WIN_BACK = text("""
    INSERT INTO win_backs (customer_id, granted_at, reward) VALUES (:customer_id, :at, CAST(:reward AS jsonb))
    ON CONFLICT DO NOTHING
""")


def _now() -> datetime:
    return datetime.now(UTC)


def _lines(data: OrderData) -> list[Line]:
    return [Line(i.sku, i.category, i.quantity, i.unit_price * i.quantity) for i in data.items]


def month_and_day(birthday: date) -> date:
    """Only the month and day of a birthday are kept (in the leap year 2000, so 29 February fits):
    the birthday job needs no more, and the year is the more identifying part."""
    return birthday.replace(year=BIRTHDAY_YEAR)


class LoyaltyHandlers:
    def __init__(self, store: ProgrammeStore) -> None:
        self.store = store

    def table(self) -> HandlerTable:
        return {
            "commerce.customer.registered": self.on_customer,
            "commerce.customer.updated": self.on_customer,
            "commerce.order.paid": self.on_order_paid,
            "commerce.order.completed": self.on_order_completed,
            "commerce.order.cancelled": self.on_order_returned,
            "commerce.order.refunded": self.on_order_returned,
            "crm.profile.customer.erased": self.on_customer_erased,
            "crm.profile.customer.birthday_changed": self.on_birthday_changed,
            "crm.churn.risk.changed": self.on_churn_risk_changed,
        }

    # -- customers ---------------------------------------------------------------------------------

    async def on_customer(self, tx: AsyncConnection, events: list[Inbound[CustomerData]]) -> None:
        """Registration opens the membership (announcing its entry tier); the birthday's month and
        day are kept for the birthday job."""
        timeline = await self.store.timeline(tx)
        members = await lock_members(tx, [e.data.customer_id for e in events],
                                     entry_tier=timeline.current.tiers.levels[0].name, at=_now())
        for inbound in events:
            member = members.get(inbound.data.customer_id)
            if member is not None and member.events and member.traceparent is None:
                member.traceparent = inbound.event.traceparent
        birthdays = {e.data.customer_id: month_and_day(e.data.birthday) for e in events if e.data.birthday is not None}
        await self._set_birthdays(tx, birthdays)
        await save_members(tx, [m for m in members.values() if m.events])

    @staticmethod
    async def _set_birthdays(tx: AsyncConnection, birthdays: dict[str, date]) -> None:
        if birthdays:
            await tx.execute(_SET_BIRTHDAYS, {"ids": list(birthdays), "birthdays": list(birthdays.values())})

    async def on_birthday_changed(self, tx: AsyncConnection,
                                  events: list[Inbound[ProfileBirthdayChangedData]]) -> None:
        """An agent corrected a birthday in the profile: the profile sends its month and day only."""
        birthdays = {e.data.customer_id: date(BIRTHDAY_YEAR, e.data.month, e.data.day) for e in events}
        await self._set_birthdays(tx, birthdays)

    async def on_customer_erased(self, tx: AsyncConnection, events: list[Inbound[ProfileCustomerErasedData]]) -> None:
        """The profile erased a customer (and its merged duplicates): see erasure.py."""
        await erase_members(tx, events)

    # -- orders ------------------------------------------------------------------------------------

    async def on_order_paid(self, tx: AsyncConnection, events: list[Inbound[OrderData]]) -> None:
        """Earn pending points on each order once (whatever the event id), then re-evaluate tiers.
        The payer's held discounts on the order are tied to it (within the share cap) or voided."""
        order_ids = list({e.data.order_id for e in events})
        known = {row.order_id for row in await tx.execute(_KNOWN_ORDERS, {"ids": order_ids})}
        fresh: list[Inbound[OrderData]] = []
        for inbound in events:
            if inbound.data.order_id not in known:
                known.add(inbound.data.order_id)
                fresh.append(inbound)
        if not fresh:
            return
        timeline = await self.store.timeline(tx)
        current = timeline.current
        now = _now()
        # The payers' accounts are locked before their held discounts are read: a redemption is
        # written under its member's account lock and refused once the order is known, so every
        # discount the payer took on the order is committed and seen here.
        members = await lock_members(tx, [e.data.customer_id for e in fresh],
                                     entry_tier=current.tiers.levels[0].name, at=now)
        held = await discounts_on_orders(tx, [(e.data.order_id, e.data.customer_id) for e in fresh], ("held",))
        held_on: dict[tuple[str | None, str], list[Spent]] = defaultdict(list)
        for spent in held.values():
            held_on[(spent.order_id, spent.customer_id)].append(spent)
        stats = await rolling_spend(tx, list(members), current, max(now, max(e.data.occurred_at for e in fresh)))
        rows: dict[str, list[Any]] = defaultdict(list)
        applied: list[str] = []
        for inbound in fresh:
            data = inbound.data
            member = members[data.customer_id]
            member.traceparent = inbound.event.traceparent
            version, programme = timeline.in_force_at(data.occurred_at)
            mine = held_on.get((data.order_id, data.customer_id), [])
            settlement = settle([HeldDiscount(s.redemption_id, s.currency, s.money_value or Decimal(0)) for s in mine],
                                currency=data.currency, total_amount=data.total_amount,
                                max_share=programme.redemption.max_order_share)
            applied.extend(settlement.applied)
            if settlement.voided:
                await load_lots(tx, [member])
                lots = await lots_by_id(tx, members, [lot_id for s in mine for lot_id, _ in s.lots])
                for redemption_id, why in settlement.voided:
                    spent = held[redemption_id]
                    await give_back_spent(tx, member, spent, lots, spent.points - spent.returned, at=data.occurred_at,
                                          expiry_months=programme.earning.expiry_months,
                                          reason=f"points off order {data.order_id} voided: {why}",
                                          event_id=inbound.event.id, void_reason=why)
            lines = _lines(data)
            earned = earn(programme, currency=data.currency, total_amount=data.total_amount, lines=lines,
                          points_value=settlement.points_value, tier=programme.tiers.get(member.tier),
                          paid_at=data.occurred_at)
            available_at = data.occurred_at + timedelta(days=programme.earning.return_window_days)
            if earned.points:
                lot = member.book.earn_pending(earned.points, order_id=data.order_id, business_at=data.occurred_at,
                                               available_at=available_at, reason=f"order {data.order_id} paid",
                                               campaign=",".join(earned.campaigns) or None,
                                               event_id=inbound.event.id)
                if available_at <= now:  # an old payment: its return window has already closed
                    member.book.release(lot, at=available_at, expiry_months=programme.earning.expiry_months,
                                        reason="return window closed")
            stored_lines = [{"sku": line.sku, "category": line.category, "quantity": line.quantity,
                             "value": str(line.value), "points": points, "refunded_qty": 0}
                            for line, points in zip(lines or [Line("*", None, 1, data.total_amount)],
                                                    earned.line_points, strict=True)]
            rows["order_ids"].append(data.order_id)
            rows["customer_ids"].append(data.customer_id)
            rows["statuses"].append("paid")
            rows["currencies"].append(data.currency)
            rows["totals"].append(data.total_amount)
            rows["points_values"].append(settlement.points_value)
            rows["paid_ats"].append(data.occurred_at)
            rows["earned"].append(earned.points)
            rows["lines"].append(orjson.dumps(stored_lines).decode())
            rows["versions"].append(version)
            rows["tiers"].append(member.tier)
            if data.currency == current.tiers.currency:
                spend, count = stats[data.customer_id]
                stats[data.customer_id] = (spend + data.total_amount, count + 1)
            apply_tier(member, current, *stats[data.customer_id], data.occurred_at, allow_downgrade=False)
        await apply_discounts(tx, applied, now)
        await tx.execute(_INSERT_ORDERS, rows)
        await save_members(tx, members.values())

    async def on_order_completed(self, tx: AsyncConnection, events: list[Inbound[OrderData]]) -> None:
        """The return window closed: the order's pending points become available now."""
        order_ids = [e.data.order_id for e in events]
        await tx.execute(_COMPLETE_ORDERS, {"ids": order_ids})
        pending = {row.order_id: row for row in await tx.execute(_PENDING_LOTS_OF_ORDERS, {"ids": order_ids})}
        if not pending:
            return
        timeline = await self.store.timeline(tx)
        members = await lock_members(tx, [row.customer_id for row in pending.values()],
                                     entry_tier=timeline.current.tiers.levels[0].name, at=_now(), create=False)
        lots = await lots_by_id(tx, members, [row.lot_id for row in pending.values()])
        for inbound in events:
            row = pending.get(inbound.data.order_id)
            if row is None or row.lot_id not in lots:
                continue
            lot = lots[row.lot_id]
            member = members[row.customer_id]
            member.traceparent = inbound.event.traceparent
            at = min(inbound.data.occurred_at, lot.available_at or inbound.data.occurred_at)
            _, programme = timeline.in_force_at(lot.business_at)
            member.book.release(lot, at=at, expiry_months=programme.earning.expiry_months,
                                reason=f"order {inbound.data.order_id} completed")
        await save_members(tx, members.values())

    async def on_order_returned(self, tx: AsyncConnection, events: list[Inbound[OrderData]]) -> None:
        """Cancellations and refunds: take back earned points in proportion to what came back (per
        line where items are given), and give back points that the member spent on the order."""
        order_ids = sorted({e.data.order_id for e in events})
        timeline = await self.store.timeline(tx)
        members = await lock_members(tx, [e.data.customer_id for e in events],
                                     entry_tier=timeline.current.tiers.levels[0].name, at=_now(), with_lots=True)
        orders = {row.order_id: dict(row._mapping) for row in await tx.execute(_ORDERS_FOR_UPDATE, {"ids": order_ids})}
        for inbound in events:
            order = orders.get(inbound.data.order_id)
            if order is not None and order["customer_id"] != inbound.data.customer_id:
                # Which member should lose or get back points is unknowable: a dead letter to look at.
                raise HandlerFailed(f"{inbound.event.type} names another customer than the order's")
        # Only discounts the member took on their own order count: another customer's redemption
        # "off" this order id is theirs to settle (voided by the discount-holds job).
        spent = await discounts_on_orders(tx, [(e.data.order_id, e.data.customer_id) for e in events],
                                          ("held", "applied"))
        spent_on: dict[tuple[str | None, str], list[Spent]] = defaultdict(list)
        for entry in spent.values():
            spent_on[(entry.order_id, entry.customer_id)].append(entry)
        lots = await lots_by_id(tx, members, [lot_id for s in spent.values() for lot_id, _ in s.lots])
        touched: set[str] = set()
        for inbound in events:
            data = inbound.data
            member = members[data.customer_id]
            member.traceparent = inbound.event.traceparent
            order = orders.get(data.order_id)
            if order is None:  # never paid here: remember it so a late "paid" earns nothing
                order = {"order_id": data.order_id, "customer_id": data.customer_id, "status": "placed",
                         "total_amount": data.total_amount, "refunded_amount": Decimal(0), "earned_points": 0,
                         "reversed_points": 0, "lines": []}
                orders[data.order_id] = order
            if order["status"] == "cancelled":
                continue  # nothing is left to take back or give back
            total = order["total_amount"]
            cancelled = inbound.event.type == "commerce.order.cancelled"
            lines = order["lines"] if isinstance(order["lines"], list) else orjson.loads(order["lines"])
            if cancelled:
                order["refunded_amount"] = total
                order["status"] = "cancelled"
                target = order["earned_points"]
            else:
                assert isinstance(data, OrderRefundedData)
                order["refunded_amount"] = min(total, order["refunded_amount"] + data.refund_amount)
                order["status"] = "refunded" if order["refunded_amount"] >= total else "partially_refunded"
                target = self._refund_target(order, lines, data)
            order["lines"] = lines
            take_back = max(0, min(target, order["earned_points"]) - order["reversed_points"])
            if take_back:
                order_lot = next((lot for lot in member.book.open_lots()
                                  if lot.kind == "earn" and lot.order_id == data.order_id), None)
                verb = "cancelled" if cancelled else "refunded"
                member.book.reverse(order_lot, take_back, at=data.occurred_at, reason=f"order {data.order_id} {verb}",
                                    order_id=data.order_id, event_id=inbound.event.id)
                order["reversed_points"] += take_back
            _, programme = timeline.in_force_at(data.occurred_at)
            for entry in spent_on.get((data.order_id, data.customer_id), []):
                void_reason = None
                if entry.status == "held":  # the order was never paid here
                    if not cancelled:
                        continue  # a refund of an unpaid order: the hold waits for the payment or its time
                    owed, void_reason = entry.points - entry.returned, "the order was cancelled"
                elif entry.status == "applied":
                    owed = share_target(entry.points, order["refunded_amount"], total) - entry.returned
                else:
                    continue
                if owed <= 0:
                    continue
                await give_back_spent(tx, member, entry, lots, owed, at=data.occurred_at,
                                      expiry_months=programme.earning.expiry_months,
                                      reason=f"points spent on order {data.order_id} given back",
                                      event_id=inbound.event.id, void_reason=void_reason)
            touched.add(data.order_id)
        for order_id in touched:
            order = orders[order_id]
            await tx.execute(_SAVE_ORDER, {
                "order_id": order_id, "customer_id": order["customer_id"], "status": order["status"],
                "currency": next(e.data.currency for e in events if e.data.order_id == order_id),
                "total": order["total_amount"], "refunded": order["refunded_amount"],
                "reversed": order["reversed_points"], "lines": orjson.dumps(order["lines"]).decode()})
        # A refund lowers the rolling spend: the member may fall below their tier (grace starts).
        current = timeline.current
        stats = await rolling_spend(tx, list(members), current, _now())
        for member in members.values():
            apply_tier(member, current, *stats[member.customer_id], _now(), allow_downgrade=False)
        await save_members(tx, members.values())

    @staticmethod
    def _refund_target(order: dict[str, Any], lines: list[dict[str, Any]], data: OrderRefundedData) -> int:
        """Points owed back after this refund: per line for the refunded items, else by amount."""
        earned, total = order["earned_points"], order["total_amount"]
        if order["refunded_amount"] >= total:
            return earned
        if data.refunded_items and lines and lines[0]["sku"] != "*":
            for item in data.refunded_items:
                left = item.quantity
                for line in lines:
                    if line["sku"] == item.sku and left:
                        room = line["quantity"] - line["refunded_qty"]
                        moved = min(room, left)
                        line["refunded_qty"] += moved
                        left -= moved
            by_items = sum(line_target(line["points"], line["refunded_qty"], line["quantity"]) for line in lines)
            return max(by_items, order["reversed_points"])
        return max(share_target(earned, order["refunded_amount"], total), order["reversed_points"])

    # -- churn -------------------------------------------------------------------------------------

    async def on_churn_risk_changed(self, tx: AsyncConnection, events: list[Inbound[ChurnRiskChangedData]]) -> None:
        """A valuable customer turned high-risk: a win-back bonus or coupon, once per period."""
        timeline = await self.store.timeline(tx)
        programme = timeline.current
        rules = programme.win_back
        risky = [e for e in events if e.data.new_level == "high" and e.data.old_level != "high"]
        if not rules.enabled or not risky:
            return
        members = await lock_members(tx, [e.data.customer_id for e in risky],
                                     entry_tier=programme.tiers.levels[0].name, at=_now(), create=False)
        last = {row.customer_id: row.last for row in await tx.execute(_LAST_WIN_BACK, {"ids": list(members)})}
        stats = await rolling_spend(tx, list(members), programme, _now())
        for inbound in risky:
            data = inbound.data
            member = members.get(data.customer_id)
            if member is None or member.erased_at is not None:
                continue
            at = data.scored_at
            previous = last.get(data.customer_id)
            if previous is not None and at - previous < timedelta(days=rules.period_days):
                continue
            if stats[data.customer_id][0] < rules.min_spend:
                continue
            member.traceparent = inbound.event.traceparent
            if rules.reward == "points":
                member.book.credit("bonus", rules.points, at=at, expiry_months=programme.earning.expiry_months,
                                   reason="win-back offer", campaign="win_back", event_id=inbound.event.id)
                reward: dict[str, Any] = {"points": rules.points}
            else:
                reward = {"coupon_code": rules.coupon_code}
            member.events.append(notification(data.customer_id, "win_back_offer", reward, at, member.traceparent))
            await tx.execute(_RECORD_WIN_BACK, {"customer_id": data.customer_id, "at": at,
                                                "reward": orjson.dumps(reward).decode()})
            last[data.customer_id] = at
        await save_members(tx, members.values())


def build_handlers(store: ProgrammeStore) -> HandlerTable:
    table = {**LoyaltyHandlers(store).table(), **MergeHandlers(store, apply_tier).table()}
    for event_type in ("commerce.order.completed", "commerce.order.cancelled", "commerce.order.refunded"):
        table[event_type] = by_order_owner(table[event_type])
    return resolving_merged(table)

