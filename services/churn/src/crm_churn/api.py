"""HTTP routes of the churn service (thin: the model is in domain/, the fitting in refit.py)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import orjson
from crm_shared.auth import CurrentIdentity, Role
from crm_shared.db import DbReadConnection
from crm_shared.problems import PROBLEM_JSON, NotFound, Problem
from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import text

from crm_churn.domain.model import prior_model
from crm_churn.schemas import ChurnScorePage, ChurnScoreRead, Level, ModelRead, RefitRead

router = APIRouter(prefix="/v1/churn", tags=["churn"])

READERS = frozenset({Role.AGENT, Role.SUPERVISOR, Role.SERVICE})
SUPERVISOR = frozenset({Role.SUPERVISOR})
_PROBLEM = {"content": {PROBLEM_JSON: {}}}
_COLUMNS = """customer_id, score, level, previous_level, level_changed_at, p_alive, expected_orders_90d,
              one_time_buyer, value_12m, value_at_risk, currency, reasons, indicators, model_version, scored_at"""
_SORTS = {"value_at_risk": "value_at_risk", "score": "score"}


def _score_read(row: Any) -> ChurnScoreRead:
    values = dict(row._mapping)
    for name in ("reasons", "indicators"):
        if isinstance(values[name], str):
            values[name] = orjson.loads(values[name])
    return ChurnScoreRead.model_validate(values)


@router.get("/customers/{customer_id}", response_model=ChurnScoreRead, responses={404: _PROBLEM})
async def get_score(db: DbReadConnection, identity: CurrentIdentity,
                    customer_id: Annotated[str, Path(min_length=1, max_length=100)]) -> ChurnScoreRead:
    """A customer's churn risk: the calibrated probability of no order within the horizon, its
    level, P(alive) and expected orders from BG/NBD, and the top reasons with their contribution.
    Staff, and integrations with ``churn:read``; a customer with no paid order is not scored (404)."""
    identity.authorize(READERS, scope="churn:read")
    row = (await db.execute(text(f"SELECT {_COLUMNS} FROM churn_scores WHERE customer_id = :id"),
                            {"id": customer_id})).first()
    if row is None:
        raise NotFound("churn score of customer", customer_id)
    return _score_read(row)


@router.get("/customers", response_model=ChurnScorePage, responses={422: _PROBLEM})
async def list_scores(db: DbReadConnection, identity: CurrentIdentity,
                      level: Level | None = None,
                      sort: Annotated[str, Query(pattern="^(value_at_risk|score)$",
                                                 description="value_at_risk (default) or score, highest first")]
                      = "value_at_risk",
                      cursor: Annotated[str | None, Query(max_length=200)] = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 50) -> ChurnScorePage:
    """Scored customers, highest value at risk (score × 12-month spend) or highest score first,
    optionally of one level; cursor-paginated."""
    identity.authorize(READERS, scope="churn:read")
    column = _SORTS[sort]
    after_value, after_id = None, ""
    if cursor:
        try:
            raw, after_id = cursor.split("|", 1)
            after_value = Decimal(raw) if column == "value_at_risk" else float(raw)
        except (ValueError, InvalidOperation):
            raise Problem(422, "Unprocessable Content", "cursor is not one this API gave out") from None
    keyset = f"AND ({column} < :after OR ({column} = :after AND customer_id > :after_id))" if cursor else ""
    rows = list(await db.execute(text(f"""
        SELECT {_COLUMNS} FROM churn_scores
        WHERE (CAST(:level AS text) IS NULL OR level = :level) {keyset}
        ORDER BY {column} DESC, customer_id LIMIT :limit"""), {
        "level": level, "after": after_value, "after_id": after_id, "limit": limit + 1}))
    items = [_score_read(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = f"{getattr(last, column)}|{last.customer_id}"
    return ChurnScorePage(items=items, next_cursor=next_cursor)


@router.get("/model", response_model=ModelRead)
async def get_model(request: Request, db: DbReadConnection, identity: CurrentIdentity) -> ModelRead:
    """The model in force: version, fitted parameters (BG/NBD r, α, a, b; the calibration's
    coefficients) and the quality report of its backtest on the shop's own history."""
    identity.authorize(READERS, scope="churn:read")
    row = (await db.execute(text("""SELECT version, kind, params, report, trained_at, duration_s, created_by
                                    FROM churn_models ORDER BY trained_at DESC LIMIT 1"""))).first()
    if row is None:
        prior = prior_model(request.app.state.resources.settings.churn_horizon_days)
        return ModelRead(version=prior.version, kind="prior", params=prior.params(),
                         report={"holdout": None, "note": "no fit yet: the CDNOW estimates of the 2005 paper"})
    return ModelRead.model_validate(dict(row._mapping))


@router.post("/model/refit", response_model=RefitRead, responses={409: _PROBLEM, 422: _PROBLEM})
async def refit(request: Request, identity: CurrentIdentity) -> RefitRead:
    """Fit the model again on the shop's history now (supervisors), put it in force and rescore
    every customer. Answers when done, with the new model's report. 409 while another refit runs."""
    identity.authorize(SUPERVISOR)
    result = await request.app.state.resources.refitter.refit(actor=identity.subject)
    return RefitRead(**result, trained_at=result["report"]["trained_at"], created_by=identity.subject)
