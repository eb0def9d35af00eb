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
from crm_loyalty.domain.events import movement_events
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
    events: list[CloudEvent] = field(default_factory=list)  # besides the movement events
    traceparent: str | None = None

    @property
    def customer_id(self) -> str:
        return self.book.customer_id


_ENSURE_ACCOUNTS = text("""
    INSERT INTO accounts (customer_id, tier, tier_since)
    SELECT customer_id, :tier, :at FROM unnest(CAST(:ids AS text[])) AS t(customer_id)
    ON CONFLICT (customer_id) DO NOTHING
""")
_LOCK_ACCOUNTS = text("""
    SELECT customer_id, tier, tier_since, below_tier_since, available, pending, debt, lifetime_earned,
           birthday, birthday_bonus_year, erased_at
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
    FROM lots WHERE lot_id = ANY(CAST(:ids AS bigint[]))
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
                          updated_at = now()
    FROM unnest(CAST(:ids AS text[]), CAST(:available AS bigint[]), CAST(:pending AS bigint[]),
                CAST(:debt AS bigint[]), CAST(:lifetime AS bigint[]), CAST(:tiers AS text[]),
                CAST(:tier_sinces AS timestamptz[]), CAST(:below AS timestamptz[]), CAST(:years AS integer[]))
         AS t(customer_id, available, pending, debt, lifetime_earned, tier, tier_since, below_tier_since,
              birthday_bonus_year)
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
    if create:
        await tx.execute(_ENSURE_ACCOUNTS, {"ids": ids, "tier": entry_tier, "at": at})
    members = {
        row.customer_id: Member(
            Book(row.customer_id, row.available, row.pending, row.debt, row.lifetime_earned),
            row.tier, row.tier_since, row.below_tier_since, row.birthday, row.birthday_bonus_year, row.erased_at)
        for row in await tx.execute(_LOCK_ACCOUNTS, {"ids": ids})
    }
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
    """Lots by id, the same objects as in the members' books where those are loaded. A lot that
    belongs to nobody among ``members`` is left out: points given back for it go to a fresh lot of
    the member (after an unmerge, lots the survivor spent from are the duplicate's again)."""
    known: dict[int, Lot] = {}
    for member in members.values():
        for lot in member.book.lots or ():
            if lot.lot_id is not None:
                known[lot.lot_id] = lot
    missing = [i for i in lot_ids if i not in known]
    if missing:
        for row in await tx.execute(_LOTS_BY_ID, {"ids": missing}):
            if row.customer_id not in members:
                continue
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
        "years": [m.birthday_bonus_year for m in members]})
    events: list[CloudEvent] = []
    for member in members:
        events.extend(movement_events(member.book, traceparent=member.traceparent))
        events.extend(member.events)
        member.book.movements.clear()
        member.book.new_lots.clear()
        member.events.clear()
    events.extend(extra_events)
    await add_to_outbox(tx, events)


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
