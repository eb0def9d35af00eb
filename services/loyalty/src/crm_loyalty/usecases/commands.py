"""Commands on one member's points: redemptions (gifts, points off an order), agents'
adjustments, with the programme's limits, and bonuses by reference (campaigns). The route opens
the unit of work and commits."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal

from crm_shared.errors import ConflictError, NotFoundError, NotPermitted, RuleViolation

from crm_loyalty.domain.discounts import period_start
from crm_loyalty.domain.earning import money_value
from crm_loyalty.domain.ledger import InsufficientPoints
from crm_loyalty.domain.members import Member
from crm_loyalty.domain.programme import Programme
from crm_loyalty.usecases.common import ProgrammeStore, Uow, now, save
from crm_loyalty.usecases.customers import refuse_if_erased

PROGRAMME_MAX_AGE_S = 1.0  # how stale a programme an HTTP command may use (ProgrammeStore)


async def programme_for_commands(uow: Uow, store: ProgrammeStore) -> Programme:
    return (await store.timeline(uow, max_age_s=PROGRAMME_MAX_AGE_S)).current


def _invalid(detail: str) -> RuleViolation:
    return RuleViolation(detail, code="unprocessable-content")


async def locked_member(uow: Uow, customer_id: str, *, with_lots: bool) -> Member:
    members = await uow.repo.lock_members([customer_id], entry_tier="", at=now(), create=False, with_lots=with_lots)
    if customer_id not in members:
        raise NotFoundError.of("loyalty account", customer_id)
    return members[customer_id]


@dataclass(frozen=True, slots=True)
class Redemption:
    redemption_id: str
    customer_id: str
    kind: str
    points: int
    points_returned: int
    money_value: Decimal | None
    currency: str | None
    order_id: str | None
    gift_sku: str | None
    available_after: int
    created_at: datetime
    status: str
    resolved_at: datetime | None


async def redeem(uow: Uow, store: ProgrammeStore, *, customer_id: str, kind: str, points: int, currency: str | None,
                 order_id: str | None, gift_sku: str | None, reason: str | None, actor: str,
                 traceparent: str | None = None) -> Redemption:
    """Spend points on a gift or as cash off an order not yet paid, oldest expiry first. An order
    discount is ``held`` until the member's own order is paid (``domain/discounts.py``)."""
    programme = await programme_for_commands(uow, store)
    if points < programme.redemption.min_points:
        raise _invalid(f"redeem at least {programme.redemption.min_points} points at a time")
    value = None
    if kind == "order_discount":
        rate = programme.redemption.points_per_unit.get(currency)
        if rate is None:
            raise _invalid(f"points cannot be redeemed in {currency}")
        value = money_value(points, rate)
    # The account is locked before the order is looked at: the payment of this member's order is
    # applied under the same lock, so either it sees this discount or this sees the order.
    member = await locked_member(uow, customer_id, with_lots=True)
    refuse_if_erased(member.erased_at)
    if kind == "order_discount" and await uow.repo.order_known(order_id):
        # One answer whoever's the order is, so order ids of other members cannot be probed.
        raise ConflictError(f"order {order_id} is already settled; points go off an order before it is paid",
                            code="order-closed")
    redemption_id = str(uuid.uuid4())
    at = now()
    what = gift_sku if kind == "gift" else f"order {order_id}"
    try:
        taken = member.book.spend("redeem", points, at=at, reason=reason or f"redeemed for {what}",
                                  order_id=order_id, redemption_id=redemption_id, actor=actor)
    except InsufficientPoints as short:
        raise RuleViolation(f"{short.wanted} points requested but only {short.available} available",
                            code="insufficient-points") from None
    member.traceparent = traceparent
    held = kind == "order_discount"
    await uow.repo.insert_redemption({
        "redemption_id": redemption_id, "customer_id": customer_id, "kind": kind, "points": points,
        "currency": currency if value is not None else None, "money_value": value, "order_id": order_id,
        "gift_sku": gift_sku, "reason": reason, "actor": actor, "created_at": at,
        "status": "held" if held else "applied", "resolved_at": None if held else at}, taken)
    await save(uow, [member])
    return Redemption(redemption_id=redemption_id, customer_id=customer_id, kind=kind, points=points,
                      points_returned=0, money_value=value, currency=currency if value is not None else None,
                      order_id=order_id, gift_sku=gift_sku, available_after=member.book.available, created_at=at,
                      status="held" if held else "applied", resolved_at=None if held else at)


@dataclass(frozen=True, slots=True)
class Adjustment:
    entry_id: int
    customer_id: str
    points: int
    reason: str
    ticket_id: str | None
    actor: str
    available_after: int
    debt_after: int


async def adjust(uow: Uow, store: ProgrammeStore, *, customer_id: str, points: int, reason: str,
                 ticket_id: str | None, actor: str, supervisor: bool, traceparent: str | None = None) -> Adjustment:
    """Add or deduct points by hand. Agents may move up to ``adjustments.agent_limit`` points per
    request and ``agent_period_limit`` (summed either way) per ``agent_period_hours``; above that a
    supervisor must. Added points pay off any debt first; a deduction never goes below zero."""
    programme = await programme_for_commands(uow, store)
    size = abs(points)
    if size > programme.adjustments.supervisor_limit:
        raise _invalid(f"adjustments are limited to {programme.adjustments.supervisor_limit} points")
    if size > programme.adjustments.agent_limit and not supervisor:
        raise NotPermitted(f"adjustments above {programme.adjustments.agent_limit} points need a supervisor")
    at = now()
    member = await locked_member(uow, customer_id, with_lots=True)
    refuse_if_erased(member.erased_at)
    limit = programme.adjustments.agent_period_limit
    if limit is not None and not supervisor:
        # Counted in this transaction: a refused or failed adjustment rolls its count back with it.
        hours = programme.adjustments.agent_period_hours
        period = period_start(at, hours)
        if await uow.repo.use_agent_allowance(actor, period, size, limit) is None:
            used = await uow.repo.agent_usage(actor, period)
            raise NotPermitted(f"agents may adjust at most {limit} points per {hours} hours; {used} used since "
                               f"{period.isoformat()}: a supervisor must make this one",
                               code="adjustment-allowance-exhausted")
    cause = {"actor": actor, "ticket_id": ticket_id}
    if points > 0:
        member.book.credit("adjust", points, at=at, expiry_months=programme.earning.expiry_months,
                           reason=reason, **cause)
    else:
        try:
            member.book.spend("adjust", size, at=at, reason=reason, **cause)
        except InsufficientPoints as short:
            raise RuleViolation(f"cannot deduct {short.wanted} points: only {short.available} available",
                                code="insufficient-points") from None
    member.traceparent = traceparent
    available, debt = member.book.available, member.book.debt
    await save(uow, [member])
    entry_id = await uow.repo.last_entry_id(customer_id)
    return Adjustment(entry_id=entry_id, customer_id=customer_id, points=points, reason=reason, ticket_id=ticket_id,
                      actor=actor, available_after=available, debt_after=debt)


@dataclass(frozen=True, slots=True)
class BonusGrant:
    entry_id: int
    customer_id: str
    points: int
    reason: str
    reference: str
    available_after: int
    debt_after: int
    granted_by: str
    granted_at: datetime


async def grant_bonus(uow: Uow, store: ProgrammeStore, *, customer_id: str, points: int, reason: str, reference: str,
                      actor: str, traceparent: str | None = None) -> BonusGrant:
    """Bonus points by reference (a campaign's ``campaign:<id>:<occurrence>``): a ``bonus`` ledger
    entry, available at once with the programme's expiry, paying off any debt first, and announced
    (``crm.loyalty.points.earned``). Once per member and reference: a reference already used answers
    the bonus it paid, whatever idempotency key the request carries (the account's lock orders two
    requests with the same reference)."""
    programme = await programme_for_commands(uow, store)
    member = await locked_member(uow, customer_id, with_lots=True)
    refuse_if_erased(member.erased_at)
    earlier = await uow.repo.bonus_grant(customer_id, reference)
    if earlier is not None:
        return BonusGrant(**earlier)
    at = now()
    member.book.credit("bonus", points, at=at, expiry_months=programme.earning.expiry_months, reason=reason,
                       campaign=reference, actor=actor)
    member.traceparent = traceparent
    available, debt = member.book.available, member.book.debt
    await save(uow, [member])
    grant = BonusGrant(entry_id=await uow.repo.last_entry_id(customer_id), customer_id=customer_id, points=points,
                       reason=reason, reference=reference, available_after=available, debt_after=debt,
                       granted_by=actor, granted_at=at)
    await uow.repo.record_bonus_grant({k: v for k, v in asdict(grant).items() if k != "reason"})
    return grant
