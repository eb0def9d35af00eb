"""The ledger's scheduled jobs: release, expiry, expiry notices, tier downgrades, birthdays, and
voiding order discounts whose order never proved them (discount-holds).

Each job works as of a business time (now, unless a supervisor runs it for a given moment in a
test environment), in chunks of members, one unit of work per chunk (opened with ``open_uow`` and
committed here), so a large run never holds many locks for long. Every job is idempotent: running
it twice for the same moment changes nothing the second time. A PostgreSQL advisory lock keeps two
replicas from running the same job at once. ``jobs.py`` runs them all every ``JOBS_INTERVAL_S``;
supervisors can run one at once (``POST /v1/loyalty/jobs/{job}``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import stamina
from crm_shared.db import is_transient
from crm_shared.errors import NotFoundError, RuleViolation
from crm_shared.logging import get_logger

from crm_loyalty.domain.events import notification
from crm_loyalty.domain.members import Member
from crm_loyalty.domain.programme import ProgrammeTimeline
from crm_loyalty.usecases.common import ProgrammeStore, Uow, apply_tier, give_back_spent, now, save
from crm_loyalty.usecases.coupons import issue_rule_coupon

log = get_logger(__name__)
CHUNK = 500

OpenUow = Callable[[], AbstractAsyncContextManager[Uow]]
Work = Callable[[Uow, ProgrammeTimeline, str], Awaitable[tuple[int, int, str | None]]]


@dataclass(frozen=True, slots=True)
class JobResult:
    job: str
    as_of: datetime
    members: int
    points: int = 0


async def _chunks(open_uow: OpenUow, store: ProgrammeStore, job: str, as_of: datetime, work: Work) -> JobResult:
    """Run ``work`` chunk by chunk (one unit of work each) until it reports no next cursor."""
    members = points = 0
    cursor: str | None = ""
    while True:
        # A consumer batch locks its members stage by stage, not in one global order, so a chunk
        # can deadlock with it; PostgreSQL aborts one side and the chunk is simply run again.
        async for attempt in stamina.retry_context(on=is_transient, attempts=5, wait_initial=0.05, wait_max=1.0):
            with attempt:
                async with open_uow() as uow:
                    if not await uow.repo.try_job_lock(job):
                        log.info("job already running elsewhere", job=job)
                        cursor = None
                        done = moved = 0
                        break
                    timeline = await store.timeline(uow)
                    done, moved, next_cursor = await work(uow, timeline, cursor or "")
                    await uow.commit()
                    cursor = next_cursor
        members += done
        points += moved
        if cursor is None:
            break
    result = JobResult(job, as_of, members, points)
    if members:
        log.info("job done", job=job, members=members, points=points, as_of=as_of.isoformat())
    return result


async def _lots_due(open_uow: OpenUow, store: ProgrammeStore, job: str, as_of: datetime,
                    due: Callable[[Uow], Awaitable[list[str]]], act: Callable[[Member, ProgrammeTimeline], int]
                    ) -> JobResult:
    """A job over members with lots due by ``as_of``: lock them with their lots, ``act``, save."""
    async def work(uow: Uow, timeline: ProgrammeTimeline, _cursor: str):
        ids = await due(uow)
        members = await uow.repo.lock_members(ids, entry_tier="", at=as_of, create=False, with_lots=True)
        moved = sum(act(member, timeline) for member in members.values())
        await save(uow, members.values())
        return len(members), moved, ("" if len(ids) == CHUNK else None)
    return await _chunks(open_uow, store, job, as_of, work)


async def release(open_uow: OpenUow, store: ProgrammeStore, as_of: datetime) -> JobResult:
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
    return await _lots_due(open_uow, store, "release", as_of,
                           lambda uow: uow.repo.members_with_releases_due(as_of, CHUNK), act)


async def expire(open_uow: OpenUow, store: ProgrammeStore, as_of: datetime) -> JobResult:
    """Available lots past their expiry date expire whole (``crm.loyalty.points.expired``)."""
    def act(member: Member, _timeline: ProgrammeTimeline) -> int:
        due = sorted((lot for lot in member.book.open_lots()
                      if lot.state == "available" and lot.expires_at is not None and lot.expires_at <= as_of),
                     key=lambda lot: (lot.expires_at, lot.lot_id))
        return sum(member.book.expire(lot, at=lot.expires_at) for lot in due)
    return await _lots_due(open_uow, store, "expire", as_of,
                           lambda uow: uow.repo.members_with_expiries_due(as_of, CHUNK), act)


async def expiry_notices(open_uow: OpenUow, store: ProgrammeStore, as_of: datetime) -> JobResult:
    """One "points about to expire" request per member with points expiring within the notice period."""
    async def work(uow: Uow, timeline: ProgrammeTimeline, _cursor: str):
        days = timeline.current.notices.expiry_notice_days
        if days == 0:
            return 0, 0, None
        rows = await uow.repo.expiry_notices_due(as_of, as_of + timedelta(days=days), CHUNK)
        await uow.publish([
            notification(customer_id, "points_expiring", {"points": points, "expires_at": first.isoformat()}, as_of)
            for customer_id, points, first, _ in rows])
        await uow.repo.mark_noticed([i for *_, lot_ids in rows for i in lot_ids], as_of)
        return len(rows), sum(points for _, points, _, _ in rows), ("" if len(rows) == CHUNK else None)
    return await _chunks(open_uow, store, "expiry-notices", as_of, work)


async def tiers(open_uow: OpenUow, store: ProgrammeStore, as_of: datetime) -> JobResult:
    """Re-evaluate every member above the entry tier; downgrade those below it for the grace period."""
    async def work(uow: Uow, timeline: ProgrammeTimeline, cursor: str):
        programme = timeline.current
        ids = await uow.repo.members_above(programme.tiers.levels[0].name, cursor, CHUNK)
        members = await uow.repo.lock_members(ids, entry_tier="", at=as_of, create=False)
        stats = await uow.repo.rolling_spend(list(members), programme, as_of)
        for member in members.values():
            apply_tier(member, programme, *stats[member.customer_id], as_of, allow_downgrade=True)
        await save(uow, members.values())
        return len(members), 0, (ids[-1] if len(ids) == CHUNK else None)
    return await _chunks(open_uow, store, "tiers", as_of, work)


async def birthdays(open_uow: OpenUow, store: ProgrammeStore, as_of: datetime) -> JobResult:
    """The tier's birthday bonus, once a year in the member's birthday month, where the tier grants
    one, and its birthday coupon where it names a pool. The greeting itself is a campaign of the
    campaigns service (issue 20): no ``birthday_greeting`` notification is requested any more."""
    async def work(uow: Uow, timeline: ProgrammeTimeline, cursor: str):
        programme = timeline.current
        ids = await uow.repo.birthdays_due(as_of.month, as_of.year, cursor, CHUNK)
        members = await uow.repo.lock_members(ids, entry_tier="", at=as_of, create=False)
        coupon_year = (datetime(as_of.year, 1, 1, tzinfo=UTC), datetime(as_of.year + 1, 1, 1, tzinfo=UTC))
        had_coupon = (await uow.repo.birthday_coupons_issued(list(members), *coupon_year)
                      if any(t.birthday_coupon_pool_id for t in programme.tiers.levels) else set())
        granted = touched = 0
        for member in members.values():
            # The member is looked at again daily in the month, so one upgraded later in the month
            # still gets the new tier's bonus (and coupon).
            tier = programme.tiers.get(member.tier)
            bonus = tier.birthday_bonus
            if bonus > 0 and (member.birthday_bonus_year or 0) < as_of.year:
                member.book.credit("bonus", bonus, at=as_of, expiry_months=programme.earning.expiry_months,
                                   reason=f"birthday bonus {as_of.year}", campaign="birthday")
                member.birthday_bonus_year = as_of.year
                granted += bonus
            else:
                bonus = 0
            coupon = None
            if tier.birthday_coupon_pool_id and member.erased_at is None and member.customer_id not in had_coupon:
                # One personal code a year; the customer reads it from their account's coupons.
                coupon = await issue_rule_coupon(uow, tier.birthday_coupon_pool_id, member.customer_id, "birthday",
                                                 as_of)
            touched += 1 if bonus or coupon is not None else 0
        await save(uow, members.values())
        return touched, granted, (ids[-1] if len(ids) == CHUNK else None)
    return await _chunks(open_uow, store, "birthdays", as_of, work)


async def discount_holds(open_uow: OpenUow, store: ProgrammeStore, as_of: datetime) -> JobResult:
    """Void order discounts still held (points back into their lots): their order was paid by
    someone else, settled or cancelled without them, or not paid within ``redemption.hold_hours``."""
    async def work(uow: Uow, timeline: ProgrammeTimeline, _cursor: str):
        programme = timeline.current
        hours = programme.redemption.hold_hours
        rows = await uow.repo.stale_holds(as_of - timedelta(hours=hours), CHUNK)
        members = await uow.repo.lock_members([customer_id for _, customer_id, _, _ in rows], entry_tier="",
                                              at=as_of, create=False, with_lots=True)
        spent = await uow.repo.spent_of([redemption_id for redemption_id, *_ in rows])
        lots = await uow.repo.lots_by_id(members, [lot_id for s in spent.values() for lot_id, _ in s.lots])
        returned = voided = 0
        for redemption_id, customer_id, order_id, order_known in rows:
            entry, member = spent.get(redemption_id), members.get(customer_id)
            if entry is None or member is None or entry.status != "held":
                continue  # settled meanwhile by the order's own event
            why = ("the order was settled without it (paid by another customer, or already paid or cancelled)"
                   if order_known else f"the order was not paid within {hours} hours")
            points = entry.points - entry.returned
            await give_back_spent(uow, member, entry, lots, points, at=as_of,
                                  expiry_months=programme.earning.expiry_months,
                                  reason=f"points off order {order_id} voided: {why}", void_reason=why)
            returned += points
            voided += 1
        await save(uow, members.values())
        return len(members), returned, ("" if len(rows) == CHUNK and voided else None)
    return await _chunks(open_uow, store, "discount-holds", as_of, work)


JOBS: dict[str, Callable[[OpenUow, ProgrammeStore, datetime], Awaitable[JobResult]]] = {
    "release": release, "expire": expire, "expiry-notices": expiry_notices, "tiers": tiers, "birthdays": birthdays,
    "discount-holds": discount_holds}


async def run_job(open_uow: OpenUow, store: ProgrammeStore, job: str, as_of: datetime | None, *,
                  accept_as_of: bool) -> JobResult:
    """One job by name (``JOBS``), now or (where the settings accept it) as of a given moment."""
    if job not in JOBS:
        raise NotFoundError.of("job", job)
    if as_of is not None and not accept_as_of:
        raise RuleViolation("as_of is accepted only where JOBS_ACCEPT_AS_OF is set", code="unprocessable-content")
    if as_of is not None and as_of.tzinfo is None:
        raise RuleViolation("as_of must carry a timezone", code="unprocessable-content")
    return await JOBS[job](open_uow, store, as_of or now())


async def run_all(open_uow: OpenUow, store: ProgrammeStore, as_of: datetime | None = None) -> list[JobResult]:
    as_of = as_of or now()
    return [await job(open_uow, store, as_of) for job in JOBS.values()]
