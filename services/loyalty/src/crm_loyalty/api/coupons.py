"""HTTP routes of coupons: pools and issuing (supervisors; integrations with ``coupons:issue``),
a coupon's uses (staff), a member's codes, and validating a code for a cart before checkout
(``/v1/coupons/validate``: the storefront with ``coupons:validate``, a customer for themselves,
staff). A code travels only in bodies, never in a path."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from crm_shared import idempotency
from crm_shared.auth import ALL_ROLES, STAFF, SUPERVISOR, CurrentIdentity, Role
from crm_shared.errors import NotPermitted
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import PROBLEM_RESPONSE as _PROBLEM
from fastapi import APIRouter, Header, Path, Query, Request

from crm_loyalty.api.common import CustomerIdPath, ReadUow, Uow
from crm_loyalty.domain.coupons import Cart, CartLine
from crm_loyalty.schemas.coupons import (
    AccountCouponRead,
    CouponIssue,
    CouponIssueRead,
    CouponPoolCreate,
    CouponPoolPage,
    CouponPoolRead,
    CouponPoolSettings,
    CouponRead,
    CouponRevocation,
    CouponValidate,
    CouponValidationRead,
    IssuedCouponRead,
)
from crm_loyalty.usecases import coupons

router = APIRouter(prefix="/v1/loyalty", tags=["coupons"])
validation_router = APIRouter(prefix="/v1/coupons", tags=["coupons"])

PoolIdPath = Path(min_length=1, max_length=64)
CouponIdPath = Path(min_length=1, max_length=100)
ISSUERS = frozenset({Role.SUPERVISOR, Role.SERVICE})


def _issuer(identity) -> str:
    return f"{'service' if identity.role is Role.SERVICE else 'supervisor'}:{identity.subject}"


# -- pools -----------------------------------------------------------------------------------------

@router.post("/coupon-pools", status_code=201, response_model=CouponPoolRead,
             responses={409: {**_PROBLEM, "description": "The pool id is taken, or the key is in flight"},
                        422: _PROBLEM})
async def create_pool(body: CouponPoolCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                      key: IdempotencyKey) -> CouponPoolRead:
    """A new coupon pool (supervisors): the template of the codes issued from it (percent off,
    an amount off in its currency, or free shipping; minimum spend; categories; window; limits).
    Requires ``Idempotency-Key``."""
    identity.authorize(SUPERVISOR)
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    row = await coupons.create_pool(uow, body.model_dump(), actor=identity.subject, at=datetime.now(UTC))
    answer = CouponPoolRead.model_validate(row)
    await idempotency.finish(uow, request, identity, key, 201, answer)
    await uow.commit()
    return answer


@router.get("/coupon-pools", response_model=CouponPoolPage)
async def list_pools(uow: ReadUow, identity: CurrentIdentity,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100,
                     cursor: Annotated[str | None, Query(max_length=100)] = None) -> CouponPoolPage:
    """The coupon pools by id, with how many codes were issued and uses applied (staff),
    cursor-paginated (pass ``next_cursor`` back as ``cursor``)."""
    identity.authorize(STAFF)
    rows, next_cursor = await coupons.list_pools(uow, limit, cursor or "")
    return CouponPoolPage(items=[CouponPoolRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get("/coupon-pools/{pool_id}", response_model=CouponPoolRead, responses={404: _PROBLEM})
async def get_pool(uow: ReadUow, identity: CurrentIdentity, pool_id: str = PoolIdPath) -> CouponPoolRead:
    identity.authorize(STAFF)
    return CouponPoolRead.model_validate(await coupons.get_pool(uow, pool_id))


@router.put("/coupon-pools/{pool_id}", response_model=CouponPoolRead,
            responses={404: _PROBLEM, 412: {**_PROBLEM, "description": "If-Match names another version"},
                       422: _PROBLEM})
async def replace_pool(body: CouponPoolSettings, uow: Uow, identity: CurrentIdentity, pool_id: str = PoolIdPath,
                       if_match: Annotated[str | None, Header(alias="If-Match")] = None) -> CouponPoolRead:
    """Replace a pool's settings (supervisors); ``active: false`` ends it (its codes are refused
    from then on). Codes already issued keep their own window. Send ``If-Match: <version>`` to
    refuse the change if someone else saved meanwhile (412)."""
    identity.authorize(SUPERVISOR)
    row = await coupons.update_pool(uow, pool_id, body.model_dump(), if_match=if_match, at=datetime.now(UTC))
    await uow.commit()
    return CouponPoolRead.model_validate(row)


@router.post("/coupon-pools/{pool_id}/coupons", status_code=201, response_model=CouponIssueRead,
             responses={404: _PROBLEM, 409: _PROBLEM,
                        422: {**_PROBLEM, "description": "The pool is inactive or ended, or the request invalid"}})
async def issue(body: CouponIssue, request: Request, uow: Uow, identity: CurrentIdentity, key: IdempotencyKey,
                pool_id: str = PoolIdPath) -> CouponIssueRead:
    """Issue ``count`` codes from a pool (supervisors; integrations with ``coupons:issue``):
    personal ones for ``customer_id`` (one use each, theirs only), or generic ones. The answer is
    the only place the codes are shown to the issuer: a replay with the same ``Idempotency-Key``
    answers the same codes."""
    identity.authorize(ISSUERS, scope="coupons:issue")
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    issued = await coupons.issue_coupons(uow, pool_id=pool_id, customer_id=body.customer_id, count=body.count,
                                         issued_by=_issuer(identity), at=datetime.now(UTC))
    answer = CouponIssueRead(coupons=[IssuedCouponRead(**asdict(c)) for c in issued])
    await idempotency.finish(uow, request, identity, key, 201, answer)
    await uow.commit()
    return answer


# -- coupons ---------------------------------------------------------------------------------------

def _coupon_read(row: dict) -> CouponRead:
    return CouponRead.model_validate({**row, "order_uses": row["uses_list"]})


@router.get("/coupons/{coupon_id}", response_model=CouponRead, responses={404: _PROBLEM})
async def get_coupon(uow: ReadUow, identity: CurrentIdentity, coupon_id: str = CouponIdPath) -> CouponRead:
    """A coupon (staff): its status, window and every order that named it (applied, released,
    refused with the reason). Not its code."""
    identity.authorize(STAFF)
    return _coupon_read(await coupons.coupon_with_uses(uow, coupon_id))


@router.post("/coupons/{coupon_id}/revocation", response_model=CouponRead, responses={404: _PROBLEM})
async def revoke(body: CouponRevocation, request: Request, uow: Uow, identity: CurrentIdentity, key: IdempotencyKey,
                 coupon_id: str = CouponIdPath) -> CouponRead:
    """Revoke a code (supervisors): orders naming it from now on are refused (``revoked``); uses
    already applied stay. Idempotent. Requires ``Idempotency-Key``."""
    identity.authorize(SUPERVISOR)
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    row = await coupons.revoke_coupon(uow, coupon_id, actor=identity.subject, reason=body.reason,
                                      at=datetime.now(UTC))
    answer = _coupon_read(row)
    await idempotency.finish(uow, request, identity, key, 200, answer)
    await uow.commit()
    return answer


@router.get("/accounts/{customer_id}/coupons", response_model=list[AccountCouponRead])
async def account_coupons(uow: ReadUow, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                          limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[AccountCouponRead]:
    """The member's personal codes, newest first, with their status and window: where a customer
    (and the call centre helping them) reads a code issued to them."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    return [AccountCouponRead.model_validate(row) for row in await coupons.customer_coupons(uow, customer_id, limit)]


# -- validation ------------------------------------------------------------------------------------

@validation_router.post("/validate", response_model=CouponValidationRead, responses={403: _PROBLEM, 422: _PROBLEM})
async def validate(body: CouponValidate, uow: ReadUow, identity: CurrentIdentity) -> CouponValidationRead:
    """Would this code apply to this cart now? 200 ``{valid: true, discount, ...}`` or ``{valid:
    false, reason}`` (``not_found``, ``not_started``, ``expired``, ``used_up``, ``minimum_not_met``,
    ``not_this_customers``, ``wrong_currency``, ``no_eligible_items``, ``revoked``). Read-only: the
    use is decided when the order is paid. Storefronts need ``coupons:validate``; a customer may
    only ask for themselves."""
    identity.authorize(ALL_ROLES, scope="coupons:validate")
    if identity.role is Role.CUSTOMER and body.customer_id != identity.customer_id:
        raise NotPermitted("a customer may only validate codes for themselves", code="forbidden")
    cart = Cart(body.currency, tuple(CartLine(i.sku, i.category, i.unit_price * i.quantity) for i in body.items),
                subtotal=body.subtotal, shipping=body.shipping)
    result = await coupons.validate_code(uow, code=body.code, customer_id=body.customer_id, cart=cart,
                                         at=datetime.now(UTC))
    return CouponValidationRead(valid=result.valid, coupon_id=result.coupon_id, pool_id=result.pool_id,
                                discount=str(result.discount) if result.discount is not None else None,
                                currency=result.currency, free_shipping=result.free_shipping, reason=result.reason,
                                detail=result.detail)
