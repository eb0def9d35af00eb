"""HTTP routes of the reward catalogue: the rewards (everyone reads, supervisors keep them), reward
redemptions (the member, the call centre or the shop) and their fulfilment (supervisors and
fulfilment systems). Each route checks the caller, calls one use case and maps the result."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from crm_shared import idempotency
from crm_shared.auth import ALL_ROLES, SUPERVISOR, CurrentIdentity, Role
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import PROBLEM_RESPONSE as _PROBLEM
from crm_shared.problems import Problem
from crm_shared.tracing import current_traceparent
from fastapi import APIRouter, Header, Path, Query, Request, Response

from crm_loyalty.api.common import CustomerIdPath, ReadUow, Uow, programme_store
from crm_loyalty.schemas.rewards import (
    FulfilmentUpdate,
    RewardCreate,
    RewardPage,
    RewardRead,
    RewardRedemptionCreate,
    RewardRedemptionRead,
    RewardSpec,
)
from crm_loyalty.usecases import rewards

router = APIRouter(prefix="/v1/loyalty", tags=["loyalty rewards"])

RewardIdPath = Path(min_length=1, max_length=63)
RedemptionIdPath = Path(min_length=1, max_length=100)
STAFF_AND_SERVICE = frozenset({Role.AGENT, Role.SUPERVISOR, Role.SERVICE})
FULFILLERS = frozenset({Role.SUPERVISOR, Role.SERVICE})



def _spec(body: RewardSpec) -> dict[str, Any]:
    return body.model_dump(exclude={"reward_id"})


def _redemption(row: dict[str, Any]) -> RewardRedemptionRead:
    return RewardRedemptionRead.model_validate({**row, "kind": row.get("reward_kind", row.get("kind"))})


def _etag(response: Response, reward: dict[str, Any]) -> RewardRead:
    response.headers["ETag"] = f'"{reward["version"]}"'
    return RewardRead.model_validate(reward)


# -- the catalogue ---------------------------------------------------------------------------------

@router.get("/rewards", response_model=RewardPage, responses={403: _PROBLEM, 404: _PROBLEM, 422: _PROBLEM})
async def list_rewards(uow: ReadUow, identity: CurrentIdentity,
                       customer_id: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
                       cursor: Annotated[str | None, Query(max_length=63)] = None,
                       include_unavailable: Annotated[bool, Query(description="Staff: inactive and out-of-window "
                                                                              "rewards too")] = False,
                       limit: Annotated[int, Query(ge=1, le=100)] = 50) -> RewardPage:
    """The rewards redeemable now (active, within their window), by id, cursor-paginated (pass
    ``next_cursor`` back as ``cursor``). With ``customer_id`` each says whether that member may redeem
    one now (``eligible``) and why not (``reason``: window, tier, segment, limit, stock, points); a
    customer may pass only their own id."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    if include_unavailable and identity.role not in STAFF_AND_SERVICE:
        raise Problem(403, "Forbidden", "only staff see rewards that cannot be redeemed now")
    rows = await rewards.list_rewards(uow, after=cursor or "", limit=limit + 1, include_unavailable=include_unavailable,
                                      customer_id=customer_id)
    items = [RewardRead.model_validate(row) for row in rows[:limit]]
    return RewardPage(items=items, next_cursor=items[-1].reward_id if len(rows) > limit else None)


@router.get("/rewards/{reward_id}", response_model=RewardRead, responses={404: _PROBLEM})
async def get_reward(response: Response, uow: ReadUow, identity: CurrentIdentity,
                     reward_id: str = RewardIdPath) -> RewardRead:
    """One reward, with its stock, redeemed count and version (also as the ``ETag``)."""
    identity.authorize(ALL_ROLES, scope="loyalty:read")
    return _etag(response, await rewards.get_reward(uow, reward_id))


@router.post("/rewards", status_code=201, response_model=RewardRead,
             responses={409: {**_PROBLEM, "description": "The reward id exists, or the key is in flight"},
                        422: _PROBLEM})
async def create_reward(body: RewardCreate, request: Request, response: Response, uow: Uow,
                        identity: CurrentIdentity, key: IdempotencyKey) -> RewardRead:
    """Add a reward to the catalogue (supervisors), under an id of their choosing (``mug-2026``).
    Requires ``Idempotency-Key``."""
    identity.authorize(SUPERVISOR)
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    created = await rewards.create_reward(uow, reward_id=body.reward_id, spec=_spec(body), actor=identity.subject)
    answer = _etag(response, created)
    await idempotency.finish(uow, request, identity, key, 201, answer)
    await uow.commit()
    return answer


@router.put("/rewards/{reward_id}", response_model=RewardRead,
            responses={404: _PROBLEM, 412: {**_PROBLEM, "description": "If-Match names an older version"},
                       422: _PROBLEM})
async def replace_reward(body: RewardSpec, response: Response, uow: Uow, identity: CurrentIdentity,
                         reward_id: str = RewardIdPath,
                         if_match: Annotated[str | None, Header(alias="If-Match", max_length=20)] = None
                         ) -> RewardRead:
    """Replace every editable field of a reward, stock included (supervisors). Send
    ``If-Match: <version>`` to refuse the change (412) if someone changed the reward meanwhile.
    Redemptions already made keep what they cost."""
    identity.authorize(SUPERVISOR)
    replaced = await rewards.replace_reward(uow, reward_id=reward_id, spec=_spec(body), if_match=if_match)
    await uow.commit()
    return _etag(response, replaced)


# -- redemptions -----------------------------------------------------------------------------------

@router.post("/accounts/{customer_id}/reward-redemptions", status_code=201, response_model=RewardRedemptionRead,
             responses={404: _PROBLEM, 409: {**_PROBLEM, "description": "Out of stock, or the key is in flight"},
                        410: _PROBLEM,
                        422: {**_PROBLEM, "description": "Unavailable, not eligible, limit reached, not enough "
                                                         "points, or invalid"}})
async def redeem_reward(body: RewardRedemptionCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                        key: IdempotencyKey, customer_id: str = CustomerIdPath) -> RewardRedemptionRead:
    """Redeem a reward for points (``points_price`` × ``quantity``, oldest expiry first). Refused
    with ``reward-not-found`` (404), ``reward-unavailable`` (inactive or outside its window),
    ``not-eligible`` (tier or segment), ``limit-reached`` (the member's limit per period),
    ``insufficient-points`` (422), or ``out-of-stock`` (409): the stock is never oversold, however
    many members race for the last units. Gifts start ``requested``; digital rewards ``delivered``.
    Requires ``Idempotency-Key``."""
    identity.authorize(ALL_ROLES, scope="loyalty:redeem", customer_id=customer_id)
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    result = await rewards.redeem_reward(uow, customer_id=customer_id, reward_id=body.reward_id,
                                         quantity=body.quantity, reason=body.reason, actor=identity.subject,
                                         traceparent=current_traceparent.get())
    answer = RewardRedemptionRead(**asdict(result))
    await idempotency.finish(uow, request, identity, key, 201, answer)
    await uow.commit()
    return answer


@router.get("/accounts/{customer_id}/reward-redemptions", response_model=list[RewardRedemptionRead])
async def list_reward_redemptions(uow: ReadUow, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                                  limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[RewardRedemptionRead]:
    """The member's reward redemptions, newest first, with their fulfilment status."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    return [_redemption(row) for row in await rewards.reward_redemptions_of(uow, customer_id, limit)]


@router.get("/reward-redemptions/{redemption_id}", response_model=RewardRedemptionRead, responses={404: _PROBLEM})
async def get_reward_redemption(uow: ReadUow, identity: CurrentIdentity,
                                redemption_id: str = RedemptionIdPath) -> RewardRedemptionRead:
    """One reward redemption with its fulfilment history (staff, and services with ``loyalty:read``)."""
    identity.authorize(STAFF_AND_SERVICE, scope="loyalty:read")
    return _redemption(await rewards.reward_redemption(uow, redemption_id))


@router.post("/reward-redemptions/{redemption_id}/fulfilment", response_model=RewardRedemptionRead,
             responses={404: _PROBLEM, 409: {**_PROBLEM, "description": "The status may not follow the current one"},
                        422: _PROBLEM})
async def change_fulfilment(body: FulfilmentUpdate, request: Request, uow: Uow, identity: CurrentIdentity,
                            key: IdempotencyKey, redemption_id: str = RedemptionIdPath) -> RewardRedemptionRead:
    """Move a gift along: ``requested`` → ``shipped`` → ``delivered``, or ``cancelled`` before it is
    delivered (the points go back into the lots they came from and the units back into stock).
    Delivered and cancelled are final (409 ``invalid-transition``); digital rewards cannot be
    cancelled; the same status twice changes nothing. Supervisors, and fulfilment systems with the
    ``loyalty:fulfil`` scope (or the ``commerce.reward.fulfilment.updated`` event). Requires
    ``Idempotency-Key``."""
    identity.authorize(FULFILLERS, scope="loyalty:fulfil")
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    changed = await rewards.change_fulfilment(uow, programme_store(request), rewards.FulfilmentChange(
        redemption_id=redemption_id, status=body.status, actor=identity.subject, note=body.note,
        traceparent=current_traceparent.get()))
    answer = _redemption(changed)
    await idempotency.finish(uow, request, identity, key, 200, answer)
    await uow.commit()
    return answer
