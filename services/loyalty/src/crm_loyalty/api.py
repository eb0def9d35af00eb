"""HTTP routes of the loyalty service (thin: read models and commands, rules live in domain/)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

import orjson
from crm_shared import idempotency
from crm_shared.auth import ALL_ROLES, CurrentIdentity, Forbidden, Role
from crm_shared.db import DbConnection, DbReadConnection
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import PROBLEM_BASE, PROBLEM_JSON, NotFound, Problem
from crm_shared.tracing import current_traceparent
from fastapi import APIRouter, Header, Path, Query, Request
from sqlalchemy import text

from crm_loyalty.domain.discounts import period_start
from crm_loyalty.domain.earning import money_value
from crm_loyalty.domain.ledger import InsufficientPoints
from crm_loyalty.erasure import refuse_if_erased
from crm_loyalty.jobs import Jobs
from crm_loyalty.repository import (
    Member,
    ProgrammeStore,
    agent_usage,
    lock_members,
    save_members,
    use_agent_allowance,
)
from crm_loyalty.schemas import (
    AccountRead,
    AdjustmentCreate,
    AdjustmentRead,
    BalanceRead,
    ExpiryRead,
    JobRead,
    LedgerEntryRead,
    LedgerPage,
    ProgrammeRead,
    ProgrammeUpdate,
    RedemptionCreate,
    RedemptionRead,
)

router = APIRouter(prefix="/v1/loyalty", tags=["loyalty"])

STAFF = frozenset({Role.AGENT, Role.SUPERVISOR})
SUPERVISOR = frozenset({Role.SUPERVISOR})
CustomerIdPath = Path(min_length=1, max_length=100)
BIGINT_MAX = 2**63 - 1
_PROBLEM = {"content": {PROBLEM_JSON: {}}}

_ACCOUNT = text("""
    SELECT a.customer_id, a.tier, a.tier_since, a.below_tier_since, a.available, a.pending, a.debt,
           a.lifetime_earned,
           (SELECT COALESCE(sum(remaining), 0) FROM lots l WHERE l.customer_id = a.customer_id
              AND l.state = 'available' AND l.expires_at <= :horizon) AS expiring_30d
    FROM accounts a WHERE a.customer_id = :customer_id
""")
_EXPIRIES = text("""
    SELECT expires_at, sum(remaining) AS points FROM lots
    WHERE customer_id = :customer_id AND state = 'available' AND remaining > 0
    GROUP BY expires_at ORDER BY expires_at LIMIT :limit
""")
_LEDGER = text("""
    SELECT entry_id, kind, points, available_delta, pending_delta, debt_delta, reason, order_id, redemption_id,
           actor, ticket_id, campaign, business_at, recorded_at
    FROM ledger WHERE customer_id = :customer_id AND entry_id < :before
      AND (CAST(:kind AS text) IS NULL OR kind = :kind)
    ORDER BY entry_id DESC LIMIT :limit
""")
_BALANCE_AS_OF = text("""
    SELECT EXISTS (SELECT 1 FROM accounts WHERE customer_id = :customer_id) AS known,
           COALESCE(sum(available_delta), 0) AS available, COALESCE(sum(pending_delta), 0) AS pending,
           COALESCE(sum(debt_delta), 0) AS debt
    FROM ledger WHERE customer_id = :customer_id AND business_at <= :as_of
""")
_ORDER_STATUS = text("SELECT status, customer_id FROM orders WHERE order_id = :order_id")
_INSERT_REDEMPTION = text("""
    WITH redemption AS (
        INSERT INTO redemptions (redemption_id, customer_id, kind, points, currency, money_value, order_id,
                                 gift_sku, reason, actor, created_at, status, resolved_at)
        VALUES (:redemption_id, :customer_id, :kind, :points, :currency, :money_value, :order_id, :gift_sku,
                :reason, :actor, :created_at, :status, :resolved_at)
    )
    INSERT INTO redemption_lots (redemption_id, lot_id, points)
    SELECT :redemption_id, * FROM unnest(CAST(:lot_ids AS bigint[]), CAST(:lot_points AS bigint[]))
""")
_REDEMPTIONS = text("""
    SELECT redemption_id, customer_id, kind, points, points_returned, money_value, currency, order_id, gift_sku,
           created_at, status, resolved_at, void_reason
    FROM redemptions WHERE customer_id = :customer_id ORDER BY created_at DESC, redemption_id LIMIT :limit
""")
_LAST_ENTRY = text("SELECT max(entry_id) FROM ledger WHERE customer_id = :customer_id")
_PROGRAMME = text("""
    SELECT version, effective_from, created_by, note, created_at, config FROM programme_versions
    ORDER BY version DESC LIMIT :limit
""")
_NEW_VERSION = text("""
    INSERT INTO programme_versions (version, config, effective_from, created_by, note)
    SELECT max(version) + 1, CAST(:config AS jsonb), :at, :actor, :note FROM programme_versions
    RETURNING version, effective_from, created_by, note, created_at, config
""")
_LOCK_PROGRAMME = text("LOCK TABLE programme_versions IN EXCLUSIVE MODE")


PROGRAMME_MAX_AGE_S = 1.0  # how stale a programme an HTTP command may use (repository.ProgrammeStore)


def _store(request: Request) -> ProgrammeStore:
    return request.app.state.resources.store


async def _programme(request: Request, db):
    return (await _store(request).timeline(db, max_age_s=PROGRAMME_MAX_AGE_S)).current


def _jobs(request: Request) -> Jobs:
    return request.app.state.resources.jobs


async def _locked_member(db, customer_id: str, *, with_lots: bool) -> Member:
    members = await lock_members(db, [customer_id], entry_tier="", at=datetime.now(UTC), create=False,
                                 with_lots=with_lots)
    if customer_id not in members:
        raise NotFound("loyalty account", customer_id)
    return members[customer_id]


# -- accounts --------------------------------------------------------------------------------------

@router.get("/accounts/{customer_id}", response_model=AccountRead, responses={404: _PROBLEM})
async def get_account(request: Request, db: DbReadConnection, identity: CurrentIdentity,
                      customer_id: str = CustomerIdPath) -> AccountRead:
    """A member's tier and balances: available, pending (return window open), debt, lifetime
    earned, points expiring in the next 30 days and what the available points are worth.
    Customers see only their own account."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    now = datetime.now(UTC)
    row = (await db.execute(_ACCOUNT, {"customer_id": customer_id, "horizon": now + timedelta(days=30)})).first()
    if row is None:
        raise NotFound("loyalty account", customer_id)
    first = (await db.execute(_EXPIRIES, {"customer_id": customer_id, "limit": 1})).first()
    programme = await _programme(request, db)
    return AccountRead(
        customer_id=row.customer_id, tier=row.tier, tier_since=row.tier_since, tier_grace_since=row.below_tier_since,
        available=row.available, pending=row.pending, debt=row.debt, lifetime_earned=row.lifetime_earned,
        expiring_30d=int(row.expiring_30d),
        next_expiry=ExpiryRead(expires_at=first.expires_at, points=int(first.points)) if first else None,
        cash_value={currency: str(money_value(row.available, rate))
                    for currency, rate in programme.redemption.points_per_unit.items()})


@router.get("/accounts/{customer_id}/expiries", response_model=list[ExpiryRead], responses={404: _PROBLEM})
async def list_expiries(db: DbReadConnection, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                        limit: Annotated[int, Query(ge=1, le=100)] = 24) -> list[ExpiryRead]:
    """What expires when: the member's available points by expiry date, soonest first."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    rows = list(await db.execute(_EXPIRIES, {"customer_id": customer_id, "limit": limit}))
    return [ExpiryRead(expires_at=row.expires_at, points=int(row.points)) for row in rows]


@router.get("/accounts/{customer_id}/ledger", response_model=LedgerPage, responses={422: _PROBLEM})
async def list_ledger(db: DbReadConnection, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                      cursor: Annotated[str | None, Query(max_length=30)] = None,
                      kind: Annotated[str | None, Query(max_length=30)] = None,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50) -> LedgerPage:
    """The member's ledger, newest first, cursor-paginated (pass ``next_cursor`` back as ``cursor``).
    Every movement: its kind, what it did to available, pending and debt, its reason and cause, when it
    happened in the shop and when it was recorded."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    before = BIGINT_MAX
    if cursor is not None:
        if not cursor.isdigit() or not 0 < int(cursor) <= BIGINT_MAX:
            raise Problem(422, "Unprocessable Content", "cursor is not one this API gave out")
        before = int(cursor)
    rows = list(await db.execute(_LEDGER, {"customer_id": customer_id, "before": before, "kind": kind,
                                           "limit": limit + 1}))
    items = [LedgerEntryRead.model_validate(dict(row._mapping)) for row in rows[:limit]]
    return LedgerPage(items=items, next_cursor=str(items[-1].entry_id) if len(rows) > limit else None)


@router.get("/accounts/{customer_id}/balance", response_model=BalanceRead, responses={404: _PROBLEM})
async def balance_as_of(db: DbReadConnection, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                        as_of: Annotated[datetime | None, Query(description="A moment (RFC 3339); default now")] = None
                        ) -> BalanceRead:
    """The balances as of a moment in business time: the sum of every ledger movement that had
    happened in the shop by then."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    moment = as_of or datetime.now(UTC)
    if moment.tzinfo is None:
        raise Problem(422, "Unprocessable Content", "as_of must carry a timezone")
    row = (await db.execute(_BALANCE_AS_OF, {"customer_id": customer_id, "as_of": moment})).first()
    if not row.known:
        raise NotFound("loyalty account", customer_id)
    return BalanceRead(customer_id=customer_id, as_of=moment, available=row.available, pending=row.pending,
                       debt=row.debt)


# -- redemptions -----------------------------------------------------------------------------------

@router.post("/accounts/{customer_id}/redemptions", status_code=201, response_model=RedemptionRead,
             responses={404: _PROBLEM, 409: {**_PROBLEM, "description": "Key in flight, or the order is paid"},
                        422: {**_PROBLEM, "description": "Not enough points, invalid request or key reused"}})
async def redeem(body: RedemptionCreate, request: Request, db: DbConnection, identity: CurrentIdentity,
                 key: IdempotencyKey, customer_id: str = CustomerIdPath) -> RedemptionRead:
    """Spend points on a gift or as cash off an order not yet paid, oldest expiry first.

    Refused with 422 ``insufficient-points`` when the available balance is short: the balance
    never goes negative, however many redemptions race (the account row is locked). An order
    discount is ``held`` until the member's own order is paid: then it is ``applied`` if it fits
    the programme's ``redemption.max_order_share`` of the order's value and currency, else
    ``voided`` with the points given back; so is one whose order is cancelled, paid by someone
    else, or not paid within ``redemption.hold_hours``. Points spent on an order come back if the
    order is cancelled or refunded. Requires ``Idempotency-Key``."""
    identity.authorize(ALL_ROLES, scope="loyalty:redeem", customer_id=customer_id)
    replay = await idempotency.begin(db, request, identity, key)
    if replay is not None:
        return replay
    programme = await _programme(request, db)
    if body.points < programme.redemption.min_points:
        raise Problem(422, "Unprocessable Content",
                      f"redeem at least {programme.redemption.min_points} points at a time")
    value = None
    if body.kind == "order_discount":
        rate = programme.redemption.points_per_unit.get(body.currency)
        if rate is None:
            raise Problem(422, "Unprocessable Content", f"points cannot be redeemed in {body.currency}")
        value = money_value(body.points, rate)
    # The account is locked before the order is looked at: the payment of this member's order is
    # applied under the same lock, so either it sees this discount or this sees the order.
    member = await _locked_member(db, customer_id, with_lots=True)
    refuse_if_erased(member.erased_at)
    if body.kind == "order_discount":
        # One answer whoever's the order is, so order ids of other members cannot be probed.
        if (await db.execute(_ORDER_STATUS, {"order_id": body.order_id})).first() is not None:
            raise Problem(409, "Conflict", f"order {body.order_id} is already settled; points go off an order "
                                           "before it is paid", type_=PROBLEM_BASE + "order-closed")
    redemption_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    what = body.gift_sku if body.kind == "gift" else f"order {body.order_id}"
    try:
        taken = member.book.spend("redeem", body.points, at=now, reason=body.reason or f"redeemed for {what}",
                                  order_id=body.order_id, redemption_id=redemption_id, actor=identity.subject)
    except InsufficientPoints as short:
        raise Problem(422, "Unprocessable Content",
                      f"{short.wanted} points requested but only {short.available} available",
                      type_=PROBLEM_BASE + "insufficient-points") from None
    member.traceparent = current_traceparent.get()
    await db.execute(_INSERT_REDEMPTION, {
        "redemption_id": redemption_id, "customer_id": customer_id, "kind": body.kind, "points": body.points,
        "currency": body.currency if value is not None else None, "money_value": value, "order_id": body.order_id,
        "gift_sku": body.gift_sku, "reason": body.reason, "actor": identity.subject, "created_at": now,
        # An order discount is held until the member's own order is paid (domain/discounts.py).
        "status": "held" if body.kind == "order_discount" else "applied",
        "resolved_at": None if body.kind == "order_discount" else now,
        "lot_ids": [lot.lot_id for lot, _ in taken], "lot_points": [points for _, points in taken]})
    await save_members(db, [member])
    answer = RedemptionRead(redemption_id=redemption_id, customer_id=customer_id, kind=body.kind, points=body.points,
                            points_returned=0, money_value=value, currency=body.currency if value is not None else None,
                            order_id=body.order_id, gift_sku=body.gift_sku, available_after=member.book.available,
                            created_at=now, status="held" if body.kind == "order_discount" else "applied",
                            resolved_at=None if body.kind == "order_discount" else now)
    await idempotency.finish(db, request, identity, key, 201, answer)
    await db.commit()
    return answer


@router.get("/accounts/{customer_id}/redemptions", response_model=list[RedemptionRead])
async def list_redemptions(db: DbReadConnection, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                           limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[RedemptionRead]:
    """The member's redemptions, newest first, with the points given back by cancels and refunds."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    return [RedemptionRead.model_validate(dict(row._mapping))
            for row in await db.execute(_REDEMPTIONS, {"customer_id": customer_id, "limit": limit})]


# -- adjustments -----------------------------------------------------------------------------------

@router.post("/accounts/{customer_id}/adjustments", status_code=201, response_model=AdjustmentRead,
             responses={403: {**_PROBLEM, "description": "Above the agent's limit per request or per period"},
                        404: _PROBLEM,
                        409: _PROBLEM, 422: _PROBLEM})
async def adjust(body: AdjustmentCreate, request: Request, db: DbConnection, identity: CurrentIdentity,
                 key: IdempotencyKey, customer_id: str = CustomerIdPath) -> AdjustmentRead:
    """Add or deduct points by hand (agents and supervisors), with a reason and optionally the ticket
    it settles. Agents may move up to the programme's ``adjustments.agent_limit`` points per request
    and ``adjustments.agent_period_limit`` points (either way, summed) per ``agent_period_hours``
    (403 ``adjustment-allowance-exhausted`` past it); above that a supervisor must. Added points
    pay off any debt first; a deduction never takes the balance below zero. Requires
    ``Idempotency-Key``."""
    identity.authorize(STAFF)
    replay = await idempotency.begin(db, request, identity, key)
    if replay is not None:
        return replay
    programme = await _programme(request, db)
    size = abs(body.points)
    if size > programme.adjustments.supervisor_limit:
        raise Problem(422, "Unprocessable Content",
                      f"adjustments are limited to {programme.adjustments.supervisor_limit} points")
    if size > programme.adjustments.agent_limit and identity.role is not Role.SUPERVISOR:
        raise Forbidden(f"adjustments above {programme.adjustments.agent_limit} points need a supervisor")
    now = datetime.now(UTC)
    member = await _locked_member(db, customer_id, with_lots=True)
    refuse_if_erased(member.erased_at)
    limit = programme.adjustments.agent_period_limit
    if limit is not None and identity.role is not Role.SUPERVISOR:
        # Counted in this transaction: a refused or failed adjustment rolls its count back with it.
        hours = programme.adjustments.agent_period_hours
        period = period_start(now, hours)
        if await use_agent_allowance(db, identity.subject, period, size, limit) is None:
            used = await agent_usage(db, identity.subject, period)
            raise Problem(403, "Forbidden",
                          f"agents may adjust at most {limit} points per {hours} hours; {used} used since "
                          f"{period.isoformat()}: a supervisor must make this one",
                          type_=PROBLEM_BASE + "adjustment-allowance-exhausted")
    cause = {"actor": identity.subject, "ticket_id": body.ticket_id}
    if body.points > 0:
        member.book.credit("adjust", body.points, at=now, expiry_months=programme.earning.expiry_months,
                           reason=body.reason, **cause)
    else:
        try:
            member.book.spend("adjust", size, at=now, reason=body.reason, **cause)
        except InsufficientPoints as short:
            raise Problem(422, "Unprocessable Content",
                          f"cannot deduct {short.wanted} points: only {short.available} available",
                          type_=PROBLEM_BASE + "insufficient-points") from None
    member.traceparent = current_traceparent.get()
    available, debt = member.book.available, member.book.debt
    await save_members(db, [member])
    entry_id = (await db.execute(_LAST_ENTRY, {"customer_id": customer_id})).scalar()
    answer = AdjustmentRead(entry_id=entry_id, customer_id=customer_id, points=body.points, reason=body.reason,
                            ticket_id=body.ticket_id, actor=identity.subject, available_after=available,
                            debt_after=debt)
    await idempotency.finish(db, request, identity, key, 201, answer)
    await db.commit()
    return answer


# -- the programme ---------------------------------------------------------------------------------

def _programme_read(row) -> ProgrammeRead:
    config = row.config if isinstance(row.config, dict) else orjson.loads(row.config)
    return ProgrammeRead(version=row.version, effective_from=row.effective_from, created_by=row.created_by,
                         note=row.note, created_at=row.created_at, config=config)


@router.get("/programme", response_model=ProgrammeRead)
async def get_programme(db: DbReadConnection, identity: CurrentIdentity) -> ProgrammeRead:
    """The programme in force: earning rules, tiers, campaigns, redemption rate, adjustment limits,
    win-back and notice settings, with its version."""
    identity.authorize(ALL_ROLES, scope="loyalty:read")
    return _programme_read((await db.execute(_PROGRAMME, {"limit": 1})).one())


@router.get("/programme/versions", response_model=list[ProgrammeRead])
async def list_programme_versions(db: DbReadConnection, identity: CurrentIdentity,
                                  limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[ProgrammeRead]:
    """Every version of the programme, newest first (supervisors), for review."""
    identity.authorize(SUPERVISOR)
    return [_programme_read(row) for row in await db.execute(_PROGRAMME, {"limit": limit})]


@router.put("/programme", response_model=ProgrammeRead,
            responses={412: {**_PROBLEM, "description": "If-Match names an older version"}, 422: _PROBLEM})
async def replace_programme(body: ProgrammeUpdate, request: Request, db: DbConnection, identity: CurrentIdentity,
                            if_match: Annotated[str | None, Header(alias="If-Match")] = None) -> ProgrammeRead:
    """Save a new version of the programme (supervisors). It applies from now on, never
    retroactively: orders paid before now earn by the version in force when they were paid, and
    points already earned stay. Send ``If-Match: <version>`` to refuse the change if someone else
    saved a version meanwhile."""
    identity.authorize(SUPERVISOR)
    await db.execute(_LOCK_PROGRAMME)
    latest = (await db.execute(_PROGRAMME, {"limit": 1})).one()
    if if_match is not None and if_match.strip('"W/') != str(latest.version):
        raise Problem(412, "Precondition Failed",
                      f"the programme is at version {latest.version}, not {if_match}; reload and retry")
    row = (await db.execute(_NEW_VERSION, {"config": body.config.model_dump_json(), "at": datetime.now(UTC),
                                           "actor": identity.subject, "note": body.note})).one()
    await db.commit()
    _store(request).forget()
    return _programme_read(row)


# -- jobs ------------------------------------------------------------------------------------------

@router.post("/jobs/{job}", response_model=JobRead, responses={404: _PROBLEM, 422: _PROBLEM})
async def run_job(request: Request, identity: CurrentIdentity,
                  job: Annotated[str, Path(description="release, expire, expiry-notices, tiers, birthdays or "
                                                         "discount-holds")],
                  as_of: Annotated[datetime | None, Query(description="Only where JOBS_ACCEPT_AS_OF is set")] = None
                  ) -> JobRead:
    """Run one scheduled job now (supervisors): ``release`` pending points whose return window
    closed, ``expire`` lots, send ``expiry-notices``, re-evaluate ``tiers`` (downgrades after the grace
    period), send ``birthdays`` greetings and bonuses, void ``discount-holds`` whose order never proved
    them. Jobs are idempotent."""
    identity.authorize(SUPERVISOR)
    jobs = _jobs(request)
    if job not in jobs.by_name:
        raise NotFound("job", job)
    if as_of is not None and not request.app.state.resources.settings.jobs_accept_as_of:
        raise Problem(422, "Unprocessable Content", "as_of is accepted only where JOBS_ACCEPT_AS_OF is set")
    if as_of is not None and as_of.tzinfo is None:
        raise Problem(422, "Unprocessable Content", "as_of must carry a timezone")
    result = await jobs.by_name[job](as_of or datetime.now(UTC))
    return JobRead(job=result.job, as_of=result.as_of, members=result.members, points=result.points)
