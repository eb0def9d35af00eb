"""Members' books: lock accounts, load lots, write every change back with set-based SQL.

A command or event batch locks the accounts it touches (``FOR UPDATE``, in customer-id order so
two transactions never wait on each other in a circle), loads their open lots when it needs
them, lets the domain (``domain/ledger.py``) work on the books in memory and writes everything
back in a handful of multi-row statements: new lots, changed lots, ledger rows and account rows.
The outgoing events are returned for the use case to publish. Repositories never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from crm_shared.erasure import ERASED_TEXT, record_erased
from crm_shared.events.envelope import CloudEvent
from crm_shared.idempotency import forget_answers
from sqlalchemy import text

from crm_loyalty.domain.events import movement_events, tier_changed
from crm_loyalty.domain.ledger import Book, Lot
from crm_loyalty.domain.members import Member
from crm_loyalty.repository.base import Sql

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


_SET_BIRTHDAYS = text("""
    UPDATE accounts a SET birthday = t.birthday, updated_at = now()
    FROM unnest(CAST(:ids AS text[]), CAST(:birthdays AS date[])) AS t(customer_id, birthday)
    WHERE a.customer_id = t.customer_id AND a.erased_at IS NULL
""")
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


_ERASE = [
    text("""UPDATE accounts a SET birthday = NULL, erased_at = COALESCE(a.erased_at, e.erased_at),
                                 updated_at = now()
            FROM erased_customers e
            WHERE e.customer_id = a.customer_id AND e.customer_id = ANY(CAST(:ids AS text[]))"""),
    # Written by a person (an agent's adjustment, a redemption): the actor is set on those only.
    text("""UPDATE ledger SET reason = :erased
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND actor IS NOT NULL AND reason <> :erased"""),
    text("""UPDATE redemptions SET reason = NULL
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND reason IS NOT NULL"""),
    # Adjustment requests: the words agents and supervisors wrote; a pending one is withdrawn.
    text("""UPDATE adjustment_requests
            SET reason = :erased, note = CASE WHEN note IS NULL THEN NULL ELSE :erased END,
                status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END
            WHERE customer_id = ANY(CAST(:ids AS text[]))"""),
    # Derived from the e-mail, phone and payment means: personal data too (the referral guard).
    text("DELETE FROM member_fingerprints WHERE customer_id = ANY(CAST(:ids AS text[]))"),
]


def _lot(row: Any) -> Lot:
    return Lot(row.kind, row.points, row.remaining, row.state, row.business_at, row.available_at, row.expires_at,
               order_id=row.order_id, lot_id=row.lot_id)


def _changed_lots_of(member: Member) -> list[Lot]:
    return [lot for lot in member.book.lots or () if lot.changed and lot.lot_id is not None]


class AccountsSql(Sql):
    async def lock_members(self, customer_ids: Iterable[str], *, entry_tier: str, at: datetime,
                           create: bool = True, with_lots: bool = False) -> dict[str, Member]:
        """Lock (creating them if asked) the accounts of these customers, in id order."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        created: set[str] = set()
        if create:
            created = {row.customer_id for row in await self.conn.execute(
                _ENSURE_ACCOUNTS, {"ids": ids, "tier": entry_tier, "at": at})}
        members = {
            row.customer_id: Member(
                Book(row.customer_id, row.available, row.pending, row.debt, row.lifetime_earned),
                row.tier, row.tier_since, row.below_tier_since, row.birthday, row.birthday_bonus_year, row.erased_at,
                row.birthday_greeted_year)
            for row in await self.conn.execute(_LOCK_ACCOUNTS, {"ids": ids})
        }
        for customer_id in created:  # a new member's entry tier is announced like any later change
            members[customer_id].events.append(tier_changed(customer_id, None, entry_tier, at))
        if with_lots:
            await self.load_lots(members.values())
        return members

    async def load_lots(self, members: Iterable[Member]) -> None:
        by_id = {m.customer_id: m for m in members if m.book.lots is None}
        for member in by_id.values():
            member.book.lots = []
        if not by_id:
            return
        for row in await self.conn.execute(_OPEN_LOTS, {"ids": list(by_id)}):
            by_id[row.customer_id].book.lots.append(_lot(row))

    async def lots_by_id(self, members: dict[str, Member], lot_ids: Sequence[int]) -> dict[int, Lot]:
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
            for row in await self.conn.execute(_LOTS_BY_ID, {"ids": missing, "owners": list(members)}):
                lot = _lot(row)
                known[lot.lot_id] = lot
                book = members[row.customer_id].book
                if book.lots is not None:
                    book.lots.append(lot)
                else:
                    book.lots = [lot]
        return {i: known[i] for i in lot_ids if i in known}

    async def save_members(self, members: Iterable[Member]) -> list[CloudEvent]:
        """Write every change of these books: lots, ledger rows and accounts; the events to publish
        (movements, then each member's own) are returned, and cleared from the members."""
        members = [m for m in members]
        if not members:
            return []
        tx = self.conn
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
        return events

    async def set_birthdays(self, birthdays: dict[str, date]) -> None:
        """Month and day (in the year 2000) of these members' birthdays; erased members keep none."""
        if birthdays:
            await self.conn.execute(_SET_BIRTHDAYS, {"ids": list(birthdays), "birthdays": list(birthdays.values())})

    # -- agents' adjustments per period -----------------------------------------------------------

    async def use_agent_allowance(self, actor: str, period_start: datetime, points: int, limit: int) -> int | None:
        """Count ``points`` against the agent's allowance for the period; the new total, or None (and
        nothing counted) when it would pass ``limit``."""
        return (await self.conn.execute(_USE_AGENT_ALLOWANCE, {"actor": actor, "period_start": period_start,
                                                               "points": points, "limit": limit})).scalar()

    async def agent_usage(self, actor: str, period_start: datetime) -> int:
        return (await self.conn.execute(_AGENT_USAGE, {"actor": actor, "period_start": period_start})).scalar() or 0

    # -- erasure ----------------------------------------------------------------------------------

    async def erase(self, erased_at: dict[str, datetime]) -> list[str]:
        """Record these ids as erased (the tombstone) and scrub what may be personal: birthdays, the
        reasons people wrote, and the stored answers of adjustments (they quote their reason).
        Idempotent: a replayed erasure changes nothing."""
        ids = await record_erased(self.conn, erased_at)
        for statement in _ERASE:
            await self.conn.execute(statement, {"ids": ids, "erased": ERASED_TEXT})
        await forget_answers(self.conn, field="customer_id", values=ids)
        return ids


