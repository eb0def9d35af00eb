"""HTTP routes of the churn service: they parse, authorize, call a use case and map its result
(the reads in usecases/queries.py, the refit in usecases/refit.py)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

from crm_shared.auth import SUPERVISOR, CurrentIdentity, Role
from crm_shared.problems import PROBLEM_RESPONSE as _PROBLEM
from crm_shared.problems import Problem
from crm_shared.uow import uow_dependency
from fastapi import APIRouter, Path, Query, Request

from crm_churn.repository import ChurnRepository
from crm_churn.schemas import ChurnScorePage, ChurnScoreRead, DistributionRead, Level, ModelRead, RefitRead
from crm_churn.usecases import queries
from crm_churn.usecases import refit as refitting

router = APIRouter(prefix="/v1/churn", tags=["churn"])

ReadUow = uow_dependency(ChurnRepository, read_only=True)
READERS = frozenset({Role.AGENT, Role.SUPERVISOR, Role.SERVICE})


@router.get("/customers/{customer_id}", response_model=ChurnScoreRead, responses={404: _PROBLEM})
async def get_score(uow: ReadUow, identity: CurrentIdentity,
                    customer_id: Annotated[str, Path(min_length=1, max_length=100)]) -> ChurnScoreRead:
    """A customer's churn risk: the calibrated probability of no order within the horizon, its
    level, P(alive) and expected orders from BG/NBD, and the top reasons with their contribution.
    Staff, and integrations with ``churn:read``; a customer with no paid order is not scored (404)."""
    identity.authorize(READERS, scope="churn:read")
    return ChurnScoreRead.model_validate(await queries.score_of(uow, customer_id))


@router.get("/customers", response_model=ChurnScorePage, responses={422: _PROBLEM})
async def list_scores(uow: ReadUow, identity: CurrentIdentity,
                      level: Level | None = None,
                      sort: Annotated[str, Query(pattern="^(value_at_risk|score)$",
                                                 description="value_at_risk (default) or score, highest first")]
                      = "value_at_risk",
                      cursor: Annotated[str | None, Query(max_length=200)] = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 50) -> ChurnScorePage:
    """Scored customers, highest value at risk (score × 12-month spend) or highest score first,
    optionally of one level; cursor-paginated."""
    identity.authorize(READERS, scope="churn:read")
    after: tuple[Decimal | float, str] | None = None
    if cursor:
        try:
            raw, after_id = cursor.split("|", 1)
            after = (Decimal(raw) if sort == "value_at_risk" else float(raw), after_id)
        except (ValueError, InvalidOperation):
            raise Problem(422, "Unprocessable Content", "cursor is not one this API gave out") from None
    rows, more = await queries.scores_page(uow, level=level, sort=sort, after=after, limit=limit)
    items = [ChurnScoreRead.model_validate(row) for row in rows]
    next_cursor = None
    if more:
        last = items[-1]
        next_cursor = f"{getattr(last, sort)}|{last.customer_id}"
    return ChurnScorePage(items=items, next_cursor=next_cursor)


# Aggregates, naming no customer: marketers size their win-back work with them too.
DISTRIBUTION_READERS = READERS | {Role.MARKETER}


@router.get("/distribution", response_model=DistributionRead, response_model_by_alias=True)
async def get_distribution(uow: ReadUow, identity: CurrentIdentity) -> DistributionRead:
    """How churn risk is spread over the scored customers: customers and value at risk per level,
    and the scores in ten bins. Staff, marketers and integrations with ``churn:read``."""
    identity.authorize(DISTRIBUTION_READERS, scope="churn:read")
    return DistributionRead.model_validate(await queries.distribution(uow))


@router.get("/model", response_model=ModelRead)
async def get_model(request: Request, uow: ReadUow, identity: CurrentIdentity) -> ModelRead:
    """The model in force: version, fitted parameters (BG/NBD r, α, a, b; the calibration's
    coefficients) and the quality report of its backtest on the shop's own history."""
    identity.authorize(READERS, scope="churn:read")
    horizon_days = request.app.state.resources.settings.churn_horizon_days
    return ModelRead.model_validate(await queries.model_in_force(uow, horizon_days))


@router.post("/model/refit", response_model=RefitRead, responses={409: _PROBLEM, 422: _PROBLEM})
async def refit(request: Request, identity: CurrentIdentity) -> RefitRead:
    """Fit the model again on the shop's history now (supervisors), put it in force and rescore
    every customer. Answers when done, with the new model's report. 409 while another refit runs."""
    identity.authorize(SUPERVISOR)
    resources = request.app.state.resources
    result = await refitting.refit(resources.units, resources.scorer,
                                   horizon_days=resources.settings.churn_horizon_days,
                                   min_customers=resources.settings.refit_min_customers, actor=identity.subject,
                                   observe=resources.metrics.refit_duration.observe)
    return RefitRead(**result, trained_at=result["report"]["trained_at"], created_by=identity.subject)
