"""HTTP routes of the loyalty service: each parses, checks the caller's role, calls one use case
(``usecases/``) and maps the result to a schema. Domain errors become problem+json in
``crm_shared.problems``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from crm_shared import idempotency
from crm_shared.auth import ALL_ROLES, STAFF, SUPERVISOR, CurrentIdentity, Role
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import PROBLEM_RESPONSE as _PROBLEM
from crm_shared.problems import Problem
from crm_shared.tracing import current_traceparent
from fastapi import APIRouter, Header, Path, Query, Request

from crm_loyalty.api.common import CustomerIdPath, ReadUow, Uow, programme_store
from crm_loyalty.schemas.accounts import (
    AccountRead,
    AdjustmentCreate,
    AdjustmentRead,
    BalanceRead,
    BonusCreate,
    BonusRead,
    ExpiryRead,
    JobRead,
    LedgerEntryRead,
    LedgerPage,
    ProgrammeRead,
    ProgrammeUpdate,
    RedemptionCreate,
    RedemptionRead,
)
from crm_loyalty.usecases import commands, ledger_jobs, programme, reads

router = APIRouter(prefix="/v1/loyalty", tags=["loyalty"])

BIGINT_MAX = 2**63 - 1



# -- accounts --------------------------------------------------------------------------------------

@router.get("/accounts/{customer_id}", response_model=AccountRead, responses={404: _PROBLEM})
async def get_account(request: Request, uow: ReadUow, identity: CurrentIdentity,
                      customer_id: str = CustomerIdPath) -> AccountRead:
    """A member's tier and balances: available, pending (return window open), debt, lifetime
    earned, points expiring in the next 30 days and what the available points are worth.
    Customers see only their own account."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    row = await reads.account(uow, programme_store(request), customer_id)
    expiry = row["next_expiry"]
    return AccountRead(
        customer_id=row["customer_id"], tier=row["tier"], tier_since=row["tier_since"],
        tier_grace_since=row["below_tier_since"], available=row["available"], pending=row["pending"],
        debt=row["debt"], lifetime_earned=row["lifetime_earned"], expiring_30d=row["expiring_30d"],
        next_expiry=ExpiryRead(expires_at=expiry[0], points=expiry[1]) if expiry else None,
        cash_value=row["cash_value"])


@router.get("/accounts/{customer_id}/expiries", response_model=list[ExpiryRead], responses={404: _PROBLEM})
async def list_expiries(uow: ReadUow, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                        limit: Annotated[int, Query(ge=1, le=100)] = 24) -> list[ExpiryRead]:
    """What expires when: the member's available points by expiry date, soonest first."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    return [ExpiryRead(expires_at=at, points=points) for at, points in await reads.expiries(uow, customer_id, limit)]


@router.get("/accounts/{customer_id}/ledger", response_model=LedgerPage, responses={422: _PROBLEM})
async def list_ledger(uow: ReadUow, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
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
    rows, more = await reads.ledger_page(uow, customer_id, before=before, kind=kind, limit=limit)
    items = [LedgerEntryRead.model_validate(row) for row in rows]
    return LedgerPage(items=items, next_cursor=str(items[-1].entry_id) if more else None)


@router.get("/accounts/{customer_id}/balance", response_model=BalanceRead, responses={404: _PROBLEM})
async def balance_as_of(uow: ReadUow, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                        as_of: Annotated[datetime | None, Query(description="A moment (RFC 3339); default now")] = None
                        ) -> BalanceRead:
    """The balances as of a moment in business time: the sum of every ledger movement that had
    happened in the shop by then."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    moment = as_of or datetime.now(UTC)
    if moment.tzinfo is None:
        raise Problem(422, "Unprocessable Content", "as_of must carry a timezone")
    row = await reads.balance_as_of(uow, customer_id, moment)
    return BalanceRead(customer_id=customer_id, as_of=moment, available=row["available"], pending=row["pending"],
                       debt=row["debt"])


# -- redemptions -----------------------------------------------------------------------------------

@router.post("/accounts/{customer_id}/redemptions", status_code=201, response_model=RedemptionRead,
             responses={404: _PROBLEM, 409: {**_PROBLEM, "description": "Key in flight, or the order is paid"},
                        422: {**_PROBLEM, "description": "Not enough points, invalid request or key reused"}})
async def redeem(body: RedemptionCreate, request: Request, uow: Uow, identity: CurrentIdentity,
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
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    result = await commands.redeem(uow, programme_store(request), customer_id=customer_id, kind=body.kind,
                                   points=body.points, currency=body.currency, order_id=body.order_id,
                                   gift_sku=body.gift_sku, reason=body.reason, actor=identity.subject,
                                   traceparent=current_traceparent.get())
    answer = RedemptionRead(**asdict(result))
    await idempotency.finish(uow, request, identity, key, 201, answer)
    await uow.commit()
    return answer


@router.get("/accounts/{customer_id}/redemptions", response_model=list[RedemptionRead])
async def list_redemptions(uow: ReadUow, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                           limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[RedemptionRead]:
    """The member's redemptions, newest first, with the points given back by cancels and refunds."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    return [RedemptionRead.model_validate(row) for row in await reads.redemptions(uow, customer_id, limit)]


# -- adjustments -----------------------------------------------------------------------------------

@router.post("/accounts/{customer_id}/adjustments", status_code=201, response_model=AdjustmentRead,
             responses={403: {**_PROBLEM, "description": "Above the agent's limit per request or per period"},
                        404: _PROBLEM,
                        409: _PROBLEM, 422: _PROBLEM})
async def adjust(body: AdjustmentCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                 key: IdempotencyKey, customer_id: str = CustomerIdPath) -> AdjustmentRead:
    """Add or deduct points by hand (agents and supervisors), with a reason and optionally the ticket
    it settles. Agents may move up to the programme's ``adjustments.agent_limit`` points per request
    and ``adjustments.agent_period_limit`` points (either way, summed) per ``agent_period_hours``
    (403 ``adjustment-allowance-exhausted`` past it); above that a supervisor must. Added points
    pay off any debt first; a deduction never takes the balance below zero. Requires
    ``Idempotency-Key``."""
    identity.authorize(STAFF)
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    result = await commands.adjust(uow, programme_store(request), customer_id=customer_id, points=body.points,
                                   reason=body.reason, ticket_id=body.ticket_id, actor=identity.subject,
                                   supervisor=identity.role is Role.SUPERVISOR,
                                   traceparent=current_traceparent.get())
    answer = AdjustmentRead(**asdict(result))
    await idempotency.finish(uow, request, identity, key, 201, answer)
    await uow.commit()
    return answer


# -- bonuses by reference (campaigns) ---------------------------------------------------------------

BONUS_GRANTERS = frozenset({Role.SUPERVISOR, Role.SERVICE})


@router.post("/accounts/{customer_id}/bonuses", status_code=201, response_model=BonusRead,
             responses={403: _PROBLEM, 404: _PROBLEM, 409: {**_PROBLEM, "description": "Key in flight, or erased"},
                        422: _PROBLEM})
async def grant_bonus(body: BonusCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                      key: IdempotencyKey, customer_id: str = CustomerIdPath) -> BonusRead:
    """Bonus points for a campaign (supervisors, and services with the ``loyalty:bonus`` scope: the
    campaigns service). A ``bonus`` ledger entry, available at once with the programme's expiry (debt
    is paid first), announced as ``crm.loyalty.points.earned``. ``reference`` pays a member once: a
    request with a reference already used answers the bonus it paid (201, the same entry and the
    balances after it), whatever its ``Idempotency-Key``. Requires ``Idempotency-Key``."""
    identity.authorize(BONUS_GRANTERS, scope="loyalty:bonus")
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    result = await commands.grant_bonus(uow, programme_store(request), customer_id=customer_id, points=body.points,
                                        reason=body.reason, reference=body.reference, actor=identity.subject,
                                        traceparent=current_traceparent.get())
    answer = BonusRead(**asdict(result))
    await idempotency.finish(uow, request, identity, key, 201, answer)
    await uow.commit()
    return answer


# -- the programme ---------------------------------------------------------------------------------

@router.get("/programme", response_model=ProgrammeRead)
async def get_programme(uow: ReadUow, identity: CurrentIdentity) -> ProgrammeRead:
    """The programme in force: earning rules, tiers, campaigns, redemption rate, adjustment limits,
    win-back and notice settings, with its version."""
    identity.authorize(ALL_ROLES, scope="loyalty:read")
    return ProgrammeRead(**(await programme.programme_versions(uow, 1))[0])


@router.get("/programme/versions", response_model=list[ProgrammeRead])
async def list_programme_versions(uow: ReadUow, identity: CurrentIdentity,
                                  limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[ProgrammeRead]:
    """Every version of the programme, newest first (supervisors), for review."""
    identity.authorize(SUPERVISOR)
    return [ProgrammeRead(**version) for version in await programme.programme_versions(uow, limit)]


@router.put("/programme", response_model=ProgrammeRead,
            responses={412: {**_PROBLEM, "description": "If-Match names an older version"}, 422: _PROBLEM})
async def replace_programme(body: ProgrammeUpdate, request: Request, uow: Uow, identity: CurrentIdentity,
                            if_match: Annotated[str | None, Header(alias="If-Match")] = None) -> ProgrammeRead:
    """Save a new version of the programme (supervisors). It applies from now on, never
    retroactively: orders paid before now earn by the version in force when they were paid, and
    points already earned stay. Send ``If-Match: <version>`` to refuse the change if someone else
    saved a version meanwhile."""
    identity.authorize(SUPERVISOR)
    saved = await programme.replace_programme(uow, body.config, note=body.note, actor=identity.subject,
                                              if_match=if_match)
    await uow.commit()
    programme_store(request).forget()
    return ProgrammeRead(**saved)


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
    resources = request.app.state.resources
    result = await ledger_jobs.run_job(resources.open_uow, resources.store, job, as_of,
                                       accept_as_of=resources.settings.jobs_accept_as_of)
    return JobRead(job=result.job, as_of=result.as_of, members=result.members, points=result.points)
