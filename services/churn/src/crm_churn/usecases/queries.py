"""The reads: a customer's score, pages of scores, the model in force."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crm_shared.errors import NotFoundError

from crm_churn.domain.model import prior_model

if TYPE_CHECKING:
    from crm_shared.uow import UnitOfWork

    from crm_churn.repository import ChurnRepository

    Uow = UnitOfWork[ChurnRepository]

SORTS = ("value_at_risk", "score")


async def score_of(uow: Uow, customer_id: str) -> dict[str, Any]:
    """A customer's score; a customer with no paid order is not scored (not found)."""
    score = await uow.repo.score_of(customer_id)
    if score is None:
        raise NotFoundError.of("churn score of customer", customer_id)
    return score


async def scores_page(uow: Uow, *, level: str | None, sort: str, after: tuple[Decimal | float, str] | None,
                      limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` scores, highest ``sort`` first, after the keyset ``after``; and whether more follow."""
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    rows = await uow.repo.scores_page(level=level, sort=sort, after=after, limit=limit + 1)
    return rows[:limit], len(rows) > limit


async def model_in_force(uow: Uow, horizon_days: float) -> dict[str, Any]:
    """The latest fitted model, or before the first fit the prior (CDNOW estimates)."""
    latest = await uow.repo.latest_model()
    if latest is not None:
        return latest
    prior = prior_model(horizon_days)
    return {"version": prior.version, "kind": "prior", "params": prior.params(),
            "report": {"holdout": None, "note": "no fit yet: the CDNOW estimates of the 2005 paper"}}


LEVELS = ("low", "medium", "high")


async def distribution(uow: Uow) -> dict[str, Any]:
    """How risk is spread over the scored customers: per level the customers and the value at risk
    (per currency), and the scores in ten bins. Aggregates only: no customer is named."""
    found = await uow.repo.distribution()
    at_risk: dict[str, dict[str, Decimal]] = {}
    for level, currency, value in found["at_risk"]:
        at_risk.setdefault(level, {})[currency] = value
    return {"customers": sum(found["by_level"].values()),
            "by_level": [{"level": level, "customers": found["by_level"].get(level, 0),
                          "value_at_risk": at_risk.get(level, {})} for level in LEVELS],
            "score_bins": [{"from": b / 10, "to": (b + 1) / 10, "customers": found["bins"].get(b, 0)}
                           for b in range(10)]}
