"""The loyalty service's scheduled jobs: release, expiry, expiry notices, tier downgrades, birthdays,
and voiding order discounts whose order never proved them (discount-holds).

Each job works as of a business time (now, unless a supervisor runs it for a given moment in a
test environment), in chunks of members, one transaction per chunk, so a large run never holds
many locks for long. Every job is idempotent: running it twice for the same moment changes
nothing the second time. A PostgreSQL advisory lock keeps two replicas from running the same job
at once. The service runs them all every ``JOBS_INTERVAL_S``; supervisors can run one at once
(``POST /v1/loyalty/jobs/{job}``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import stamina
from crm_shared.bus import add_to_outbox
from crm_shared.db import is_transient
from crm_shared.logging import get_logger
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm_loyalty.domain.events import notification
from crm_loyalty.repository import (
    Member,
    ProgrammeStore,
    ProgrammeTimeline,
    lock_members,
    lots_by_id,
    rolling_spend,
    save_members,
    spent_of,
)
from crm_loyalty.usecases import apply_tier, give_back_spent

log = get_logger(__name__)
CHUNK = 500

_DUE_RELEASES = text("""
    SELECT DISTINCT customer_id FROM lots WHERE state = 'pending' AND available_at <= :as_of LIMIT :limit
""")
_DUE_EXPIRIES = text("""
    SELECT DISTINCT customer_id FROM lots
    WHERE state = 'available' AND expires_at <= :as_of AND remaining > 0 LIMIT :limit
""")
_DUE_NOTICES = text("""
    SELECT customer_id, sum(remaining) AS points, min(expires_at) AS first_expiry, array_agg(lot_id) AS lot_ids
    FROM lots
    WHERE state = 'available' AND remaining > 0 AND expiry_noticed_at IS NULL
      AND expires_at > :as_of AND expires_at <= :horizon
      AND NOT EXISTS (SELECT 1 FROM erased_customers e WHERE e.customer_id = lots.customer_id)
    GROUP BY customer_id ORDER BY customer_id LIMIT :limit
""")
_MARK_NOTICED = text("UPDATE lots SET expiry_noticed_at = :as_of WHERE lot_id = ANY(CAST(:ids AS bigint[]))")
_ABOVE_ENTRY_TIER = text("""
    SELECT customer_id FROM accounts WHERE tier <> :entry AND customer_id > :after
    ORDER BY customer_id LIMIT :limit
""")
_BIRTHDAYS_DUE = text("""
    SELECT customer_id FROM accounts
    WHERE birthday IS NOT NULL AND erased_at IS NULL AND extract(month FROM birthday) = :month
      AND (birthday_greeted_year IS NULL OR birthday_greeted_year < :year
           OR birthday_bonus_year IS NULL OR birthday_bonus_year < :year) AND customer_id > :after
    ORDER BY customer_id LIMIT :limit
""")
# Held order discounts that can no longer be tied to their member's order: the order is known here
# (paid, settled or cancelled without this discount being tied to it) or the hold ran out.
_STALE_HOLDS = text("""
    SELECT r.redemption_id, r.customer_id, r.order_id,
           EXISTS (SELECT 1 FROM orders o WHERE o.order_id = r.order_id) AS order_known
    FROM redemptions r
    WHERE r.status = 'held' AND (r.created_at <= :cutoff
                                 OR EXISTS (SELECT 1 FROM orders o WHERE o.order_id = r.order_id))
    ORDER BY r.customer_id, r.redemption_id LIMIT :limit
""")
_JOB_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended('crm-loyalty-job:' || :job, 0))")


@dataclass(frozen=True, slots=True)
class JobResult:
    job: str
    as_of: datetime
    members: int
    points: int = 0


class Jobs:
    def __init__(self, engine: AsyncEngine, store: ProgrammeStore) -> None:
        self._engine = engine
        self._store = store
        self.by_name: dict[str, Callable[[datetime], Awaitable[JobResult]]] = {
            "release": self.release, "expire": self.expire, "expiry-notices": self.expiry_notices,
            "tiers": self.tiers, "birthdays": self.birthdays, "discount-holds": self.discount_holds}

    async def run_all(self, as_of: datetime | None = None) -> list[JobResult]:
        as_of = as_of or datetime.now(UTC)
        return [await job(as_of) for job in self.by_name.values()]

    async def _chunks(self, job: str, as_of: datetime,
                      work: Callable[[AsyncConnection, ProgrammeTimeline, str], Awaitable[tuple[int, int, str | None]]]
                      ) -> JobResult:
        """Run ``work`` chunk by chunk (one transaction each) until it reports no next cursor."""
        members = points = 0
        cursor = ""
        while True:
            # A consumer batch locks its members stage by stage, not in one global order, so a chunk
            # can deadlock with it; PostgreSQL aborts one side and the chunk is simply run again.
            async for attempt in stamina.retry_context(on=is_transient, attempts=5, wait_initial=0.05, wait_max=1.0):
                with attempt:
                    async with self._engine.connect() as tx:
                        if not (await tx.execute(_JOB_LOCK, {"job": job})).scalar():
                            log.info("job already running elsewhere", job=job)
                            cursor = None
                            done = moved = 0
                            break
                        timeline = await self._store.timeline(tx)
                        done, moved, next_cursor = await work(tx, timeline, cursor)
                        await tx.commit()
                        cursor = next_cursor
            members += done
            points += moved
            if cursor is None:
                break
        result = JobResult(job, as_of, members, points)
        if members:
            log.info("job done", job=job, members=members, points=points, as_of=as_of.isoformat())
        return result

    async def _lots_due(self, job: str, due_members: TextClause, as_of: datetime,
                        act: Callable[[Member, ProgrammeTimeline], int]) -> JobResult:
        """A job over members with lots due by ``as_of``: lock them with their lots, ``act``, save."""
        async def work(tx: AsyncConnection, timeline: ProgrammeTimeline, _cursor: str):
            ids = [row[0] for row in await tx.execute(due_members, {"as_of": as_of, "limit": CHUNK})]
            members = await lock_members(tx, ids, entry_tier="", at=as_of, create=False, with_lots=True)
            moved = sum(act(member, timeline) for member in members.values())
            await save_members(tx, members.values())
            return len(members), moved, ("" if len(ids) == CHUNK else None)
        return await self._chunks(job, as_of, work)

    async def release(self, as_of: datetime) -> JobResult:
        """Pending points whose return window closed by ``as_of`` become available."""
        def act(member: Member, timeline: ProgrammeTimeline) -> int:
            moved = 0
            for lot in member.book.open_lots():
                if lot.state == "pending" and lot.available_at is not None and lot.available_at <= as_of:
                    _, programme = timeline.in_force_at(lot.business_at)
                    moved += lot.remaining
                    member.book.release(lot, at=lot.available_at, expiry_months=programme.earning.expiry_months,
                                        reason="return window closed")
            return moved
        return await self._lots_due("release", _DUE_RELEASES, as_of, act)

    async def expire(self, as_of: datetime) -> JobResult:
        """Available lots past their expiry date expire whole (``crm.loyalty.points.expired``)."""
        def act(member: Member, _timeline: ProgrammeTimeline) -> int:
            due = sorted((lot for lot in member.book.open_lots()
                          if lot.state == "available" and lot.expires_at is not None and lot.expires_at <= as_of),
                         key=lambda lot: (lot.expires_at, lot.lot_id))
            return sum(member.book.expire(lot, at=lot.expires_at) for lot in due)
        return await self._lots_due("expire", _DUE_EXPIRIES, as_of, act)

    async def expiry_notices(self, as_of: datetime) -> JobResult:
        """One "points about to expire" request per member with points expiring within the notice period."""
        async def work(tx: AsyncConnection, timeline: ProgrammeTimeline, _cursor: str):
            days = timeline.current.notices.expiry_notice_days
            if days == 0:
                return 0, 0, None
            rows = list(await tx.execute(_DUE_NOTICES, {"as_of": as_of, "horizon": as_of + timedelta(days=days),
                                                        "limit": CHUNK}))
            await add_to_outbox(tx, [
                notification(row.customer_id, "points_expiring",
                             {"points": int(row.points), "expires_at": row.first_expiry.isoformat()}, as_of)
                for row in rows])
            await tx.execute(_MARK_NOTICED, {"as_of": as_of, "ids": [i for row in rows for i in row.lot_ids]})
            return len(rows), sum(int(row.points) for row in rows), ("" if len(rows) == CHUNK else None)
        return await self._chunks("expiry-notices", as_of, work)

    async def tiers(self, as_of: datetime) -> JobResult:
        """Re-evaluate every member above the entry tier; downgrade those below it for the grace period."""
        async def work(tx: AsyncConnection, timeline: ProgrammeTimeline, cursor: str):
            programme = timeline.current
            ids = [row[0] for row in await tx.execute(_ABOVE_ENTRY_TIER, {
                "entry": programme.tiers.levels[0].name, "after": cursor, "limit": CHUNK})]
            members = await lock_members(tx, ids, entry_tier="", at=as_of, create=False)
            stats = await rolling_spend(tx, list(members), programme, as_of)
            for member in members.values():
                apply_tier(member, programme, *stats[member.customer_id], as_of, allow_downgrade=True)
            await save_members(tx, members.values())
            return len(members), 0, (ids[-1] if len(ids) == CHUNK else None)
        return await self._chunks("tiers", as_of, work)

    async def birthdays(self, as_of: datetime) -> JobResult:
        """A birthday greeting once a year in the member's birthday month, with the tier's birthday
        bonus where it has one."""
        async def work(tx: AsyncConnection, timeline: ProgrammeTimeline, cursor: str):
            programme = timeline.current
            ids = [row[0] for row in await tx.execute(_BIRTHDAYS_DUE, {
                "month": as_of.month, "year": as_of.year, "after": cursor, "limit": CHUNK})]
            members = await lock_members(tx, ids, entry_tier="", at=as_of, create=False)
            granted = touched = 0
            for member in members.values():
                # Every member is greeted once a year (consents are the messaging system's to check,
                # as for every notification); the bonus comes where the tier grants one, so a member
                # upgraded later in the month still gets it (the member is looked at again daily).
                bonus = programme.tiers.get(member.tier).birthday_bonus
                if bonus > 0 and (member.birthday_bonus_year or 0) < as_of.year:
                    member.book.credit("bonus", bonus, at=as_of, expiry_months=programme.earning.expiry_months,
                                       reason=f"birthday bonus {as_of.year}", campaign="birthday")
                    member.birthday_bonus_year = as_of.year
                    granted += bonus
                else:
                    bonus = 0
                greet = (member.birthday_greeted_year or 0) < as_of.year
                if greet:
                    member.birthday_greeted_year = as_of.year
                    member.events.append(notification(member.customer_id, "birthday_greeting", {"points": bonus},
                                                      as_of))
                touched += 1 if greet or bonus else 0
            await save_members(tx, members.values())
            return touched, granted, (ids[-1] if len(ids) == CHUNK else None)
        return await self._chunks("birthdays", as_of, work)

    async def discount_holds(self, as_of: datetime) -> JobResult:
        """Void order discounts still held (points back into their lots): their order was paid by
        someone else, settled or cancelled without them, or not paid within ``redemption.hold_hours``."""
        async def work(tx: AsyncConnection, timeline: ProgrammeTimeline, _cursor: str):
            programme = timeline.current
            hours = programme.redemption.hold_hours
            rows = list(await tx.execute(_STALE_HOLDS, {"cutoff": as_of - timedelta(hours=hours), "limit": CHUNK}))
            members = await lock_members(tx, [row.customer_id for row in rows], entry_tier="", at=as_of,
                                         create=False, with_lots=True)
            spent = await spent_of(tx, [row.redemption_id for row in rows])
            lots = await lots_by_id(tx, members, [lot_id for s in spent.values() for lot_id, _ in s.lots])
            returned = voided = 0
            for row in rows:
                entry, member = spent.get(row.redemption_id), members.get(row.customer_id)
                if entry is None or member is None or entry.status != "held":
                    continue  # settled meanwhile by the order's own event
                why = ("the order was settled without it (paid by another customer, or already paid or cancelled)"
                       if row.order_known else f"the order was not paid within {hours} hours")
                points = entry.points - entry.returned
                await give_back_spent(tx, member, entry, lots, points, at=as_of,
                                      expiry_months=programme.earning.expiry_months,
                                      reason=f"points off order {row.order_id} voided: {why}", void_reason=why)
                returned += points
                voided += 1
            await save_members(tx, members.values())
            return len(members), returned, ("" if len(rows) == CHUNK and voided else None)
        return await self._chunks("discount-holds", as_of, work)
