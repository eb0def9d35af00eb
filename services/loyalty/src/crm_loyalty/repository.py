"""Reading and writing members' books with set-based SQL. Repositories never commit.

A command or event batch locks the accounts it touches (``FOR UPDATE``, in customer-id order so
two transactions never wait on each other in a circle), loads their open lots when it needs
them, lets the domain (``domain/ledger.py``) work on the books in memory and writes everything
back in a handful of multi-row statements: new lots, changed lots, ledger rows, account rows and
the outgoing events.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from crm_shared.bus import add_to_outbox
from crm_shared.events.envelope import CloudEvent
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_loyalty.domain.earning import months_later
from crm_loyalty.domain.events import movement_events, tier_changed
from crm_loyalty.domain.ledger import Book, Lot
from crm_loyalty.domain.programme import Programme


@dataclass(slots=True, eq=False)
class Member:
    """A locked account: its points book plus tier and birthday state."""

    book: Book
    tier: str
    tier_since: datetime
    below_tier_since: datetime | None
    birthday: date | None
    birthday_bonus_year: int | None
    erased_at: datetime | None
    birthday_greeted_year: int | None = None
    events: list[CloudEvent] = field(default_factory=list)  # besides the movement events
    traceparent: str | None = None

    @property
    def customer_id(self) -> str:
        return self.book.customer_id


_ENSURE_ACCOUNTS = text("""
    INSERT INTO accounts (customer_id, tier, tier_since)
    SELECT customer_id, :tier, :at FROM unnest(CAST(:ids AS text[])) AS t(customer_id)
    ON CONFLICT (customer_id) DO NOTHING
    RETURNING customer_id
""")
_LOCK_ACCOUNTS = text("""
    SELECT customer_id, tier, tier_since, below_tier_since, available, pending, debt, lifetime_earned,
           birthday, birthday_bonus_year, erased_at, birthday_greeted_year
    FROM accounts WHERE customer_id = ANY(CAST(:ids AS text[]))
    ORDER BY customer_id FOR UPDATE
""")
_OPEN_LOTS = text("""
    SELECT lot_id, customer_id, kind, order_id, points, remaining, state, business_at, available_at, expires_at
    FROM lots WHERE customer_id = ANY(CAST(:ids AS text[])) AND state <> 'closed'
    ORDER BY lot_id
""")
_LOTS_BY_ID = text("""
    SELECT lot_id, customer_id, kind, order_id, points, remaining, state, business_at, available_at, expires_at
    FROM lots WHERE lot_id = ANY(CAST(:ids AS bigint[])) AND customer_id = ANY(CAST(:owners AS text[]))
""")
_NEXT_LOT_IDS = text("SELECT nextval('lots_lot_id_seq') FROM generate_series(1, :n)")
_INSERT_LOTS = text("""
    INSERT INTO lots (lot_id, customer_id, kind, order_id, points, remaining, state, business_at,
                      available_at, expires_at)
    SELECT * FROM unnest(CAST(:lot_ids AS bigint[]), CAST(:customer_ids AS text[]), CAST(:kinds AS text[]),
                         CAST(:order_ids AS text[]), CAST(:points AS bigint[]), CAST(:remaining AS bigint[]),
                         CAST(:states AS text[]), CAST(:business_ats AS timestamptz[]),
                         CAST(:available_ats AS timestamptz[]), CAST(:expires_ats AS timestamptz[]))
""")
_UPDATE_LOTS = text("""
    UPDATE lots l SET remaining = t.remaining, state = t.state, expires_at = t.expires_at
    FROM unnest(CAST(:lot_ids AS bigint[]), CAST(:remaining AS bigint[]), CAST(:states AS text[]),
                CAST(:expires_ats AS timestamptz[])) AS t(lot_id, remaining, state, expires_at)
    WHERE l.lot_id = t.lot_id
""")
_INSERT_LEDGER = text("""
    INSERT INTO ledger (customer_id, kind, points, available_delta, pending_delta, debt_delta, reason, order_id,
                        redemption_id, lot_id, actor, ticket_id, campaign, event_id, business_at)
    SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:kinds AS text[]), CAST(:points AS bigint[]),
                         CAST(:available AS bigint[]), CAST(:pending AS bigint[]), CAST(:debt AS bigint[]),
                         CAST(:reasons AS text[]), CAST(:order_ids AS text[]), CAST(:redemption_ids AS text[]),
                         CAST(:lot_ids AS bigint[]), CAST(:actors AS text[]), CAST(:ticket_ids AS text[]),
                         CAST(:campaigns AS text[]), CAST(:event_ids AS text[]),
                         CAST(:business_ats AS timestamptz[]))
""")
_UPDATE_ACCOUNTS = text("""
    UPDATE accounts a SET available = t.available, pending = t.pending, debt = t.debt,
                          lifetime_earned = t.lifetime_earned, tier = t.tier, tier_since = t.tier_since,
                          below_tier_since = t.below_tier_since, birthday_bonus_year = t.birthday_bonus_year,
                          birthday_greeted_year = t.birthday_greeted_year, updated_at = now()
    FROM unnest(CAST(:ids AS text[]), CAST(:available AS bigint[]), CAST(:pending AS bigint[]),
                CAST(:debt AS bigint[]), CAST(:lifetime AS bigint[]), CAST(:tiers AS text[]),
                CAST(:tier_sinces AS timestamptz[]), CAST(:below AS timestamptz[]), CAST(:years AS integer[]),
                CAST(:greeted AS integer[]))
         AS t(customer_id, available, pending, debt, lifetime_earned, tier, tier_since, below_tier_since,
              birthday_bonus_year, birthday_greeted_year)
    WHERE a.customer_id = t.customer_id
""")


def _lot(row: Any) -> Lot:
    return Lot(row.kind, row.points, row.remaining, row.state, row.business_at, row.available_at, row.expires_at,
               order_id=row.order_id, lot_id=row.lot_id)


async def lock_members(tx: AsyncConnection, customer_ids: Iterable[str], *, entry_tier: str, at: datetime,
                       create: bool = True, with_lots: bool = False) -> dict[str, Member]:
    """Lock (creating them if asked) the accounts of these customers, in id order."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    created: set[str] = set()
    if create:
        created = {row.customer_id for row in await tx.execute(_ENSURE_ACCOUNTS,
                                                                {"ids": ids, "tier": entry_tier, "at": at})}
    members = {
        row.customer_id: Member(
            Book(row.customer_id, row.available, row.pending, row.debt, row.lifetime_earned),
            row.tier, row.tier_since, row.below_tier_since, row.birthday, row.birthday_bonus_year, row.erased_at,
            row.birthday_greeted_year)
        for row in await tx.execute(_LOCK_ACCOUNTS, {"ids": ids})
    }
    for customer_id in created:  # a new member's entry tier is announced like any later change
        members[customer_id].events.append(tier_changed(customer_id, None, entry_tier, at))
    if with_lots:
        await load_lots(tx, members.values())
    return members


async def load_lots(tx: AsyncConnection, members: Iterable[Member]) -> None:
    by_id = {m.customer_id: m for m in members if m.book.lots is None}
    for member in by_id.values():
        member.book.lots = []
    if not by_id:
        return
    for row in await tx.execute(_OPEN_LOTS, {"ids": list(by_id)}):
        by_id[row.customer_id].book.lots.append(_lot(row))


async def lots_by_id(tx: AsyncConnection, members: dict[str, Member], lot_ids: Sequence[int]) -> dict[int, Lot]:
    """Lots by id, the same objects as in the members' books where those are loaded. Only lots of
    these (locked) members are returned; points given back for a lot that belongs to nobody among
    them go to a fresh lot of the member (after an unmerge, lots the survivor spent from are the
    duplicate's again)."""
    known: dict[int, Lot] = {}
    for member in members.values():
        for lot in member.book.lots or ():
            if lot.lot_id is not None:
                known[lot.lot_id] = lot
    missing = [i for i in lot_ids if i not in known]
    if missing:
        for row in await tx.execute(_LOTS_BY_ID, {"ids": missing, "owners": list(members)}):
            lot = _lot(row)
            known[lot.lot_id] = lot
            book = members[row.customer_id].book
            if book.lots is not None:
                book.lots.append(lot)
            else:
                book.lots = [lot]
    return {i: known[i] for i in lot_ids if i in known}


def _changed_lots_of(member: Member) -> list[Lot]:
    return [lot for lot in member.book.lots or () if lot.changed and lot.lot_id is not None]


async def save_members(tx: AsyncConnection, members: Iterable[Member], *, extra_events: Sequence[CloudEvent] = ()
                       ) -> None:
    """Write every change of these books: lots, ledger rows, accounts and outgoing events."""
    members = [m for m in members]
    if not members:
        return
    new_lots = [lot for m in members for lot in m.book.new_lots]
    if new_lots:
        ids = [row[0] for row in await tx.execute(_NEXT_LOT_IDS, {"n": len(new_lots)})]
        for lot, lot_id in zip(new_lots, ids, strict=True):
            lot.lot_id = lot_id
            lot.changed = False
        owner = {id(lot): m.customer_id for m in members for lot in m.book.new_lots}
        await tx.execute(_INSERT_LOTS, {
            "lot_ids": ids, "customer_ids": [owner[id(lot)] for lot in new_lots],
            "kinds": [lot.kind for lot in new_lots], "order_ids": [lot.order_id for lot in new_lots],
            "points": [lot.points for lot in new_lots], "remaining": [lot.remaining for lot in new_lots],
            "states": [lot.state for lot in new_lots], "business_ats": [lot.business_at for lot in new_lots],
            "available_ats": [lot.available_at for lot in new_lots],
            "expires_ats": [lot.expires_at for lot in new_lots]})
    changed = [lot for m in members for lot in _changed_lots_of(m)]
    if changed:
        await tx.execute(_UPDATE_LOTS, {
            "lot_ids": [lot.lot_id for lot in changed], "remaining": [lot.remaining for lot in changed],
            "states": [lot.state for lot in changed], "expires_ats": [lot.expires_at for lot in changed]})
        for lot in changed:
            lot.changed = False
    rows = [(m.customer_id, mv) for m in members for mv in m.book.movements]
    if rows:
        await tx.execute(_INSERT_LEDGER, {
            "customer_ids": [c for c, _ in rows], "kinds": [mv.kind for _, mv in rows],
            "points": [mv.points for _, mv in rows], "available": [mv.available for _, mv in rows],
            "pending": [mv.pending for _, mv in rows], "debt": [mv.debt for _, mv in rows],
            "reasons": [mv.reason for _, mv in rows], "order_ids": [mv.order_id for _, mv in rows],
            "redemption_ids": [mv.redemption_id for _, mv in rows],
            "lot_ids": [mv.lot.lot_id if mv.lot else None for _, mv in rows],
            "actors": [mv.actor for _, mv in rows], "ticket_ids": [mv.ticket_id for _, mv in rows],
            "campaigns": [mv.campaign for _, mv in rows], "event_ids": [mv.event_id for _, mv in rows],
            "business_ats": [mv.business_at for _, mv in rows]})
    await tx.execute(_UPDATE_ACCOUNTS, {
        "ids": [m.customer_id for m in members], "available": [m.book.available for m in members],
        "pending": [m.book.pending for m in members], "debt": [m.book.debt for m in members],
        "lifetime": [m.book.lifetime_earned for m in members], "tiers": [m.tier for m in members],
        "tier_sinces": [m.tier_since for m in members], "below": [m.below_tier_since for m in members],
        "years": [m.birthday_bonus_year for m in members],
        "greeted": [m.birthday_greeted_year for m in members]})
    events: list[CloudEvent] = []
    for member in members:
        events.extend(movement_events(member.book, traceparent=member.traceparent))
        events.extend(member.events)
        member.book.movements.clear()
        member.book.new_lots.clear()
        member.events.clear()
    events.extend(extra_events)
    await add_to_outbox(tx, events)


# -- points spent on orders: held, applied and voided discounts ----------------------------------------

@dataclass(slots=True)
class Spent:
    """A redemption's points and the lots they came from, locked, with what came back so far."""

    redemption_id: str
    customer_id: str
    order_id: str | None
    points: int
    returned: int
    status: str
    currency: str | None
    money_value: Decimal | None
    lots: list[tuple[int, int]]   # (lot id, points still out of it)


_SPENT = text("""
    SELECT r.redemption_id, r.customer_id, r.order_id, r.points, r.points_returned, r.status, r.currency,
           r.money_value, rl.lot_id, rl.points - rl.returned AS lot_left
    FROM redemptions r JOIN redemption_lots rl USING (redemption_id)
    WHERE r.redemption_id = ANY(CAST(:ids AS text[])) ORDER BY r.created_at, r.redemption_id, rl.lot_id
    FOR UPDATE OF r
""")
_DISCOUNTS_ON_ORDERS = text("""
    SELECT redemption_id FROM redemptions r
    JOIN unnest(CAST(:order_ids AS text[]), CAST(:customer_ids AS text[])) AS t(order_id, customer_id)
      USING (order_id, customer_id)
    WHERE r.kind = 'order_discount' AND r.status = ANY(CAST(:statuses AS text[]))
""")
_RETURN_TO_REDEMPTION = text("""
    UPDATE redemptions SET points_returned = points_returned + :points,
                           status = COALESCE(CAST(:status AS text), status),
                           resolved_at = COALESCE(CAST(:at AS timestamptz), resolved_at),
                           void_reason = COALESCE(CAST(:void_reason AS text), void_reason)
    WHERE redemption_id = :redemption_id
""")
_RETURN_TO_LOT = text("""
    UPDATE redemption_lots SET returned = returned + :points WHERE redemption_id = :redemption_id AND lot_id = :lot_id
""")
_APPLY_DISCOUNTS = text("""
    UPDATE redemptions SET status = 'applied', resolved_at = :at
    WHERE redemption_id = ANY(CAST(:ids AS text[])) AND status = 'held'
""")


async def discounts_on_orders(tx: AsyncConnection, pairs: Iterable[tuple[str, str]], statuses: Sequence[str]
                              ) -> dict[str, Spent]:
    """The order discounts each customer took on each order (``(order id, customer id)`` pairs), in
    these states, locked, oldest first. Discounts other customers took on the same order id are
    not among them."""
    pairs = sorted(set(pairs))
    if not pairs:
        return {}
    ids = [row.redemption_id for row in await tx.execute(_DISCOUNTS_ON_ORDERS, {
        "order_ids": [o for o, _ in pairs], "customer_ids": [c for _, c in pairs], "statuses": list(statuses)})]
    return await spent_of(tx, ids)


async def spent_of(tx: AsyncConnection, redemption_ids: Sequence[str]) -> dict[str, Spent]:
    spent: dict[str, Spent] = {}
    if not redemption_ids:
        return spent
    for row in await tx.execute(_SPENT, {"ids": list(redemption_ids)}):
        entry = spent.get(row.redemption_id)
        if entry is None:
            entry = spent[row.redemption_id] = Spent(row.redemption_id, row.customer_id, row.order_id, row.points,
                                                     row.points_returned, row.status, row.currency, row.money_value,
                                                     [])
        entry.lots.append((row.lot_id, row.lot_left))
    return spent


async def record_given_back(tx: AsyncConnection, spent: Spent, points: int, restored: Sequence[tuple[Lot, int]], *,
                            void_reason: str | None = None, at: datetime | None = None) -> None:
    """Write what ``Book.give_back`` returned of a redemption (and, with ``void_reason``, void it)."""
    await tx.execute(_RETURN_TO_REDEMPTION, {
        "redemption_id": spent.redemption_id, "points": points, "status": "voided" if void_reason else None,
        "at": at if void_reason else None, "void_reason": void_reason})
    for lot, amount in restored:
        if lot.lot_id is not None:
            await tx.execute(_RETURN_TO_LOT, {"redemption_id": spent.redemption_id, "lot_id": lot.lot_id,
                                              "points": amount})
    spent.returned += points
    if void_reason:
        spent.status = "voided"
    back = {lot.lot_id: amount for lot, amount in restored if lot.lot_id is not None}
    spent.lots = [(lot_id, left - back.get(lot_id, 0)) for lot_id, left in spent.lots]


async def apply_discounts(tx: AsyncConnection, redemption_ids: Sequence[str], at: datetime) -> None:
    if redemption_ids:
        await tx.execute(_APPLY_DISCOUNTS, {"ids": list(redemption_ids), "at": at})


# -- agents' adjustments per period ---------------------------------------------------------------

# One guarded upsert: the row lock taken by ON CONFLICT serialises concurrent adjustments of one
# agent (on any accounts), and the WHERE refuses to pass the limit; no row back means refused.
_USE_AGENT_ALLOWANCE = text("""
    INSERT INTO agent_adjustment_usage AS u (actor, period_start, points)
    SELECT CAST(:actor AS text), CAST(:period_start AS timestamptz), CAST(:points AS bigint)
    WHERE CAST(:points AS bigint) <= CAST(:limit AS bigint)
    ON CONFLICT (actor, period_start) DO UPDATE SET points = u.points + excluded.points
    WHERE u.points + excluded.points <= CAST(:limit AS bigint)
    RETURNING points
""")
_AGENT_USAGE = text("SELECT points FROM agent_adjustment_usage WHERE actor = :actor AND period_start = :period_start")


async def use_agent_allowance(tx: AsyncConnection, actor: str, period_start: datetime, points: int, limit: int
                              ) -> int | None:
    """Count ``points`` against the agent's allowance for the period; the new total, or None (and
    nothing counted) when it would pass ``limit``."""
    return (await tx.execute(_USE_AGENT_ALLOWANCE, {"actor": actor, "period_start": period_start, "points": points,
                                                    "limit": limit})).scalar()


async def agent_usage(tx: AsyncConnection, actor: str, period_start: datetime) -> int:
    return (await tx.execute(_AGENT_USAGE, {"actor": actor, "period_start": period_start})).scalar() or 0


# -- rolling spend for tiers and win-back ------------------------------------------------------------

_ROLLING = text("""
    SELECT customer_id, COALESCE(sum(total_amount - refunded_amount), 0) AS spend,
           count(*) FILTER (WHERE refunded_amount < total_amount) AS orders
    FROM orders
    WHERE customer_id = ANY(CAST(:ids AS text[])) AND currency = :currency AND paid_at IS NOT NULL
      AND status <> 'cancelled' AND paid_at > :since AND paid_at <= :until
    GROUP BY customer_id
""")


async def rolling_spend(tx: AsyncConnection, customer_ids: Sequence[str], programme: Programme,
                        until: datetime) -> dict[str, tuple[Decimal, int]]:
    """Paid spend net of refunds and paid-order count in the tier window ending at ``until``."""
    since = months_later(until, -programme.tiers.window_months)
    result = {c: (Decimal(0), 0) for c in customer_ids}
    for row in await tx.execute(_ROLLING, {"ids": list(customer_ids), "currency": programme.tiers.currency,
                                           "since": since, "until": until}):
        result[row.customer_id] = (row.spend, row.orders)
    return result


# -- the programme ------------------------------------------------------------------------------

_VERSIONS = text("SELECT version, effective_from FROM programme_versions ORDER BY version")
_CONFIGS = text("SELECT version, config FROM programme_versions WHERE version = ANY(CAST(:versions AS integer[]))")
_SEED = text("""
    INSERT INTO programme_versions (version, config, effective_from, created_by, note)
    VALUES (1, CAST(:config AS jsonb), '1970-01-01T00:00:00Z', 'system', 'the default programme')
    ON CONFLICT (version) DO NOTHING
""")


class ProgrammeStore:
    """The programme versions, parsed once each; a batch asks which versions exist (one small query).

    HTTP commands may take a timeline up to ``max_age_s`` old (a redemption needs the rate, not the
    version saved this very second on another replica); event handlers always ask the database, so
    an order earns by exactly the version in force when it was paid.
    """

    def __init__(self) -> None:
        self._parsed: dict[int, Programme] = {}
        self._latest: tuple[float, ProgrammeTimeline] | None = None

    def forget(self) -> None:
        self._latest = None

    @staticmethod
    async def seed(tx: AsyncConnection, programme: Programme) -> None:
        await tx.execute(_SEED, {"config": programme.model_dump_json()})

    async def timeline(self, tx: AsyncConnection, *, max_age_s: float = 0.0) -> ProgrammeTimeline:
        if max_age_s and self._latest is not None and time.monotonic() - self._latest[0] < max_age_s:
            return self._latest[1]
        versions = [(row.version, row.effective_from) for row in await tx.execute(_VERSIONS)]
        missing = [v for v, _ in versions if v not in self._parsed]
        if missing:
            for row in await tx.execute(_CONFIGS, {"versions": missing}):
                config = row.config if isinstance(row.config, dict) else orjson.loads(row.config)
                self._parsed[row.version] = Programme.model_validate(config)
        timeline = ProgrammeTimeline([(v, at, self._parsed[v]) for v, at in versions])
        self._latest = (time.monotonic(), timeline)
        return timeline


@dataclass(frozen=True, slots=True)
class ProgrammeTimeline:
    versions: list[tuple[int, datetime, Programme]]

    @property
    def current(self) -> Programme:
        return self.versions[-1][2]

    @property
    def current_version(self) -> int:
        return self.versions[-1][0]

    def in_force_at(self, moment: datetime) -> tuple[int, Programme]:
        """The version effective at a business time; changes are never retroactive."""
        chosen = self.versions[0]
        for entry in self.versions:
            if entry[1] <= moment:
                chosen = entry
        return chosen[0], chosen[2]
