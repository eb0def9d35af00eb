"""The reward catalogue: supervisors keep the rewards; members (or the call centre, or the shop)
redeem them for points; a supervisor or a fulfilment system moves a redemption along.

Redeeming locks the member's account (with its lots) first, checks the reward's window,
eligibility and the member's limit under that lock (race-free per member), then takes the stock
with one guarded ``UPDATE`` of the reward's row (never oversold: concurrent redemptions queue on the
row lock), then spends the points oldest expiry first. A refusal after the stock was taken (not
enough points) raises, and the route's transaction rolls back with the stock. The route opens the
unit of work and commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from crm_shared.erasure import erased_among
from crm_shared.errors import ConflictError, NotFoundError, PreconditionFailed, RuleViolation

from crm_loyalty.domain import rewards as rules
from crm_loyalty.domain.ledger import InsufficientPoints
from crm_loyalty.domain.reward_events import fulfilment_changed, reward_redeemed
from crm_loyalty.usecases import coupons
from crm_loyalty.usecases.commands import locked_member
from crm_loyalty.usecases.common import ProgrammeStore, Uow, give_back_spent, now, save
from crm_loyalty.usecases.customers import refuse_if_erased

MAX_FULFILMENT_OWNER_MOVES = 3  # a merge may move a redemption to another account between two reads


def _reward_not_found(reward_id: str) -> NotFoundError:
    return NotFoundError(f"no reward {reward_id!r}", code="reward-not-found")


def _redemption_not_found(redemption_id: str) -> NotFoundError:
    return NotFoundError(f"no reward redemption {redemption_id!r}", code="redemption-not-found")


def _checked(spec: dict[str, Any]) -> dict[str, Any]:
    problem = rules.spec_problem(spec)
    if problem is not None:
        raise RuleViolation(problem, code="unprocessable-content")
    return spec


# -- the catalogue ---------------------------------------------------------------------------------

async def create_reward(uow: Uow, *, reward_id: str, spec: dict[str, Any], actor: str) -> dict[str, Any]:
    """A new reward (``spec``: the editable fields by column name); 409 ``reward-exists`` if the id is taken."""
    created = await uow.repo.insert_reward({**_checked(spec), "reward_id": reward_id, "created_by": actor})
    if created is None:
        raise ConflictError(f"a reward {reward_id!r} exists already", code="reward-exists")
    return created


async def replace_reward(uow: Uow, *, reward_id: str, spec: dict[str, Any], if_match: str | None) -> dict[str, Any]:
    """Replace every editable field (stock included). With ``if_match`` (the version the caller read),
    refuse with 412 if someone changed the reward meanwhile."""
    version = None
    if if_match is not None:
        raw = if_match.strip().removeprefix("W/").strip('"')
        if not raw.isdigit() or len(raw) > 9:
            raise PreconditionFailed(f"If-Match must be a version this API gave out, not {if_match!r}")
        version = int(raw)
    replaced = await uow.repo.replace_reward(reward_id, _checked(spec), version)
    if replaced is None:
        current = await uow.repo.reward(reward_id)
        if current is None:
            raise _reward_not_found(reward_id)
        raise PreconditionFailed(f"the reward is at version {current['version']}, not {if_match}; reload and retry",
                                 code="version-mismatch")
    return replaced


async def get_reward(uow: Uow, reward_id: str) -> dict[str, Any]:
    reward = await uow.repo.reward(reward_id)
    if reward is None:
        raise _reward_not_found(reward_id)
    return reward


async def list_rewards(uow: Uow, *, after: str, limit: int, include_unavailable: bool = False,
                       customer_id: str | None = None) -> list[dict[str, Any]]:
    """Rewards by id after ``after``: the ones redeemable now unless ``include_unavailable``. With
    ``customer_id`` each carries ``eligible`` and ``reason`` (why not) for that member; stock and
    points are not promised (they race), only shown."""
    at = now()
    rows = await uow.repo.reward_page(after=after, limit=limit, at=at, include_unavailable=include_unavailable)
    if customer_id is None:
        return rows
    account = await uow.repo.account_view(customer_id, at)
    if account is None:
        raise NotFoundError.of("loyalty account", customer_id)
    segments = await uow.repo.segments_of(customer_id)
    listed = [rules.reward_of(row) for row in rows]
    used = await uow.repo.units_redeemed_many(customer_id, {
        r.reward_id: rules.limit_counted_since(r, at) for r in listed if r.per_customer_limit is not None})
    for row, reward in zip(rows, listed, strict=True):
        refused = rules.refusal(reward, at=at, tier=account["tier"], segments=segments,
                                units_redeemed=used.get(reward.reward_id, 0))
        if refused is None and reward.stock == 0:
            refused = ("out-of-stock", "the reward is out of stock")
        if refused is None and account["available"] < reward.points_price:
            refused = ("insufficient-points", f"{reward.points_price} points needed, {account['available']} available")
        row["eligible"], row["reason"] = refused is None, refused[1] if refused else None
    return rows


# -- redeeming -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RewardRedemption:
    redemption_id: str
    customer_id: str
    reward_id: str
    reward_name: str
    kind: str
    quantity: int
    points: int
    cash_due: Decimal | None
    cash_currency: str | None
    fulfilment_status: str
    coupon_id: str | None
    created_at: datetime
    available_after: int
    coupon_codes: tuple[str, ...] = ()  # the codes issued by a digital reward, for the redeeming member


async def _units_redeemed(uow: Uow, customer_id: str, reward: rules.Reward, at: datetime) -> int:
    if reward.per_customer_limit is None:
        return 0
    return await uow.repo.units_redeemed(customer_id, reward.reward_id, rules.limit_counted_since(reward, at))


async def redeem_reward(uow: Uow, *, customer_id: str, reward_id: str, quantity: int, reason: str | None,
                        actor: str, traceparent: str | None = None) -> RewardRedemption:
    """Redeem ``quantity`` units of a reward for the member: checks in the order of the module
    docstring; each refusal is a problem with its own code (reward-not-found 404, reward-unavailable,
    not-eligible, limit-reached 422, out-of-stock 409, insufficient-points 422)."""
    if not 1 <= quantity <= rules.MAX_QUANTITY:
        raise RuleViolation(f"quantity must be 1 to {rules.MAX_QUANTITY}", code="unprocessable-content")
    member = await locked_member(uow, customer_id, with_lots=True)
    refuse_if_erased(member.erased_at)
    row = await uow.repo.reward(reward_id)
    if row is None:
        raise _reward_not_found(reward_id)
    reward, at = rules.reward_of(row), now()
    used = await _units_redeemed(uow, customer_id, reward, at)
    segments = await uow.repo.segments_of(customer_id)
    refused = rules.refusal(reward, at=at, tier=member.tier, segments=segments, units_redeemed=used,
                            quantity=quantity)
    if refused is not None:
        raise RuleViolation(refused[1], code=refused[0])
    if member.book.available < rules.points_for(reward, quantity):
        # Before the stock's row lock, so members short of points never queue on it.
        raise RuleViolation(f"{rules.points_for(reward, quantity)} points needed but only {member.book.available} "
                            "available", code="insufficient-points")
    # After the account: the lock order is accounts, then catalogue rows.
    taken_row = await uow.repo.take_stock(reward_id, quantity)
    if taken_row is None:
        raise ConflictError(f"not enough of {reward.name!r} in stock for {quantity}", code="out-of-stock")
    # As of the row lock: a supervisor's change that committed meanwhile (price, window, tiers) is
    # the one that holds; a refusal now rolls the stock back with the transaction.
    locked = rules.reward_of(taken_row)
    if (locked.per_customer_limit, locked.limit_period_days) != (reward.per_customer_limit, reward.limit_period_days):
        used = await _units_redeemed(uow, customer_id, locked, at)
    reward = locked
    refused = rules.refusal(reward, at=at, tier=member.tier, segments=segments, units_redeemed=used,
                            quantity=quantity)
    if refused is not None:
        raise RuleViolation(refused[1], code=refused[0])
    points = rules.points_for(reward, quantity)
    redemption_id = str(uuid.uuid4())
    try:
        taken = member.book.spend("redeem", points, at=at, reason=reason or f"redeemed for reward {reward_id}",
                                  redemption_id=redemption_id, actor=actor)
    except InsufficientPoints as short:
        # Raised: the route's transaction rolls back, the stock taken above with it.
        raise RuleViolation(f"{short.wanted} points needed but only {short.available} available",
                            code="insufficient-points") from None
    member.traceparent = traceparent
    status, cash = rules.first_status(reward.kind), rules.cash_due(reward, quantity)
    await uow.repo.insert_reward_redemption({
        "redemption_id": redemption_id, "customer_id": customer_id, "points": points, "sku": taken_row["sku"],
        "reason": reason, "actor": actor, "created_at": at, "reward_id": reward_id, "quantity": quantity,
        "cash_due": cash, "cash_currency": reward.cash_currency if cash is not None else None,
        "fulfilment_status": status}, taken)
    coupon_id, codes = None, ()
    if reward.kind in rules.DIGITAL_KINDS:
        # After the account, the reward row and the redemption row, as the lock order wants; a pool
        # that cannot issue (inactive, ended) refuses the redemption: stock and points roll back.
        issued = await coupons.issue_coupons(uow, pool_id=taken_row["coupon_pool_id"], customer_id=customer_id,
                                             count=quantity, issued_by=f"reward:{redemption_id}", at=at)
        coupon_id, codes = issued[0].coupon_id, tuple(c.code for c in issued)
        await uow.repo.set_reward_coupon(redemption_id, coupon_id)
    await uow.publish([reward_redeemed(
        redemption_id=redemption_id, customer_id=customer_id, reward_id=reward_id, reward_name=reward.name,
        kind=reward.kind, quantity=quantity, points=points, cash_due=cash,
        cash_currency=reward.cash_currency if cash is not None else None, fulfilment_status=status, at=at,
        traceparent=traceparent)])
    available = member.book.available
    await save(uow, [member])
    return RewardRedemption(redemption_id=redemption_id, customer_id=customer_id, reward_id=reward_id,
                            reward_name=reward.name, kind=reward.kind, quantity=quantity, points=points,
                            cash_due=cash, cash_currency=reward.cash_currency if cash is not None else None,
                            fulfilment_status=status, coupon_id=coupon_id, coupon_codes=codes, created_at=at,
                            available_after=available)


# -- fulfilment ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FulfilmentChange:
    redemption_id: str
    status: str
    actor: str
    note: str | None = None
    at: datetime | None = None        # when it happened (an event's occurred_at); default now
    event_id: str | None = None
    traceparent: str | None = None


async def change_fulfilment(uow: Uow, store: ProgrammeStore, change: FulfilmentChange) -> dict[str, Any]:
    """Move a reward redemption to ``change.status`` (requested → shipped → delivered, requested or
    shipped → cancelled). The same status again changes nothing; any other move raises
    409 ``invalid-transition`` (an event carrying one is dead-lettered). A cancel
    gives the points back into the lots they came from and the units back into stock."""
    for _ in range(MAX_FULFILMENT_OWNER_MOVES):
        seen = await uow.repo.reward_redemption(change.redemption_id)
        if seen is None:
            raise _redemption_not_found(change.redemption_id)
        member = await locked_member(uow, seen["customer_id"], with_lots=True)
        current = await uow.repo.reward_redemption(change.redemption_id, for_update=True)
        if current is not None and current["customer_id"] == seen["customer_id"]:
            break
    else:
        raise ConflictError("the redemption moved between accounts meanwhile; retry", code="conflict")
    try:
        moves = rules.transition(current["reward_kind"], current["fulfilment_status"], change.status)
    except rules.InvalidTransition as refused:
        raise ConflictError(str(refused), code="invalid-transition") from None
    if not moves:  # the same status again (a retried request, a redelivered event)
        return await reward_redemption(uow, change.redemption_id)
    at = change.at or now()
    points_back = 0
    if change.status == "cancelled":
        timeline = await store.timeline(uow)
        spent = (await uow.repo.spent_of([change.redemption_id]))[change.redemption_id]
        lots = await uow.repo.lots_by_id({member.customer_id: member}, [lot_id for lot_id, _ in spent.lots])
        points_back = spent.points - spent.returned
        member.traceparent = change.traceparent
        await give_back_spent(uow, member, spent, lots, points_back, at=at,
                              expiry_months=timeline.current.earning.expiry_months,
                              reason=f"reward {current['reward_id']} cancelled", event_id=change.event_id,
                              void_reason="reward cancelled")
        await uow.repo.return_stock(current["reward_id"], current["quantity"])
    await uow.repo.set_fulfilment(change.redemption_id, change.status, at=at, actor=change.actor, note=change.note,
                                  event_id=change.event_id)
    await uow.publish([fulfilment_changed(
        redemption_id=change.redemption_id, customer_id=current["customer_id"], reward_id=current["reward_id"],
        status=change.status, at=at, points_returned=points_back or None, traceparent=change.traceparent)])
    await save(uow, [member])
    return await reward_redemption(uow, change.redemption_id)


async def fulfilments_reported(uow: Uow, store: ProgrammeStore, changes: list[FulfilmentChange]) -> None:
    """Fulfilment updates from a fulfilment system's events, in order; an unknown redemption or a
    move that may not happen raises (the consumer dead-letters the event)."""
    for change in changes:
        await change_fulfilment(uow, store, change)


# -- reads -----------------------------------------------------------------------------------------

async def reward_redemption(uow: Uow, redemption_id: str) -> dict[str, Any]:
    row = await uow.repo.reward_redemption(redemption_id)
    if row is None:
        raise _redemption_not_found(redemption_id)
    return {**row, "history": await uow.repo.fulfilment_history(redemption_id)}


async def reward_redemptions_of(uow: Uow, customer_id: str, limit: int) -> list[dict[str, Any]]:
    return await uow.repo.reward_redemptions_of(customer_id, limit)


# -- segments (for eligibility) --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SegmentChange:
    customer_id: str
    segment_id: str
    entered: bool
    at: datetime


async def segments_changed(uow: Uow, changes: list[SegmentChange]) -> None:
    """Keep which members are in which segments, from the profile's events (in each customer's order).
    Nothing is kept of someone erased."""
    erased = await erased_among(uow.connection, sorted({c.customer_id for c in changes}))
    entered: list[tuple[str, str, datetime]] = []
    exited: list[tuple[str, str]] = []
    for change in changes:
        if change.customer_id in erased:
            continue
        if change.entered:
            entered.append((change.customer_id, change.segment_id, change.at))
        else:
            exited.append((change.customer_id, change.segment_id))
    await uow.repo.enter_segments(entered)
    await uow.repo.exit_segments(exited)


async def rewards_data_erased(uow: Uow, erased_ids: list[str]) -> None:
    """Erasure: forget the members' segments and the fulfilment notes about their rewards."""
    await uow.repo.forget_reward_data(erased_ids)
