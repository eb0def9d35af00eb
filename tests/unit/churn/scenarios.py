"""Use-case scenarios of the churn service, run on the in-memory repository (tests/unit/churn) and on
the real unit of work and PostgreSQL (tests/service/churn/test_usecases_on_postgres.py).

``scenario_*(uow)`` work in one unit of work and never commit; ``refit_scenario_*(units)`` get a
callable opening units of work (``units()``, ``units(read_only=True)``), as the refit does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from crm_churn.usecases import events, merges, queries
from crm_churn.usecases.refit import NotEnoughHistory, RefitRunning, refit
from crm_churn.usecases.scoring import ModelStore, Scorer, rescore
from crm_shared.errors import NotFoundError

DAY = timedelta(days=1)


def new_scorer() -> Scorer:
    return Scorer(ModelStore(90.0), medium_at=0.4, high_at=0.7, chunk=5)


def paid(order_id: str, customer_id: str, ago: timedelta, total: str = "100", currency: str = "EUR"
         ) -> events.PaidOrder:
    return events.PaidOrder(order_id, customer_id, datetime.now(UTC) - ago, currency, Decimal(total))


async def not_scored(uow, customer_id: str) -> bool:
    with pytest.raises(NotFoundError) as refused:
        await queries.score_of(uow, customer_id)
    return refused.value.status == 404 and refused.value.code == "not-found"


async def scenario_a_paid_order_is_scored_and_a_level_is_announced_once(uow):
    scorer = new_scorer()
    await events.orders_paid(uow, scorer, [paid("o-1", "c-1", 200 * DAY), paid("o-1", "c-1", 200 * DAY)])
    score = await queries.score_of(uow, "c-1")
    assert score["indicators"]["orders"] == 1 and score["one_time_buyer"]
    assert score["currency"] == "EUR" and score["value_12m"] == Decimal(100)
    assert score["previous_level"] is None and score["model_version"] == scorer.store._model.version
    assert scorer.scored["event"] == 1
    assert await rescore(uow, scorer, ["c-1"], trigger="event") == (1, 0)  # same level: nothing announced


async def scenario_refunds_add_up_and_cancelled_orders_stop_counting(uow):
    scorer = new_scorer()
    await events.orders_paid(uow, scorer, [paid("o-1", "c-2", 30 * DAY), paid("o-2", "c-2", 10 * DAY, "50")])
    now = datetime.now(UTC)
    await events.orders_refunded(uow, scorer, [events.OrderChange("o-1", "c-2", now, Decimal(30)),
                                               events.OrderChange("o-1", "c-2", now, Decimal(20))])
    assert (await queries.score_of(uow, "c-2"))["value_12m"] == Decimal(100)
    await events.orders_cancelled(uow, scorer, [events.OrderChange("o-2", "c-2", now)])
    assert (await queries.score_of(uow, "c-2"))["indicators"]["orders"] == 1
    await events.orders_cancelled(uow, scorer, [events.OrderChange("o-1", "c-2", now)])
    assert await not_scored(uow, "c-2")  # no paid order left


async def scenario_activity_tickets_and_ratings_become_indicators(uow):
    scorer, now = new_scorer(), datetime.now(UTC)
    await events.orders_paid(uow, scorer, [paid("o-1", "c-3", 100 * DAY)])
    await events.interactions(uow, scorer, [events.Interaction("c-3", now - timedelta(hours=1))] * 3
                              + [events.Interaction("c-3", now - 40 * DAY)])
    await events.tickets_changed(uow, scorer, "opened", [events.TicketChange("t-1", "c-3", "complaint", now - 5 * DAY),
                                                         events.TicketChange("t-2", "c-3", "question", now - 3 * DAY)])
    await events.tickets_changed(uow, scorer, "breached", [events.TicketChange("t-1", "c-3", "unknown", now - 4 * DAY)])
    await events.tickets_changed(uow, scorer, "resolved", [events.TicketChange("t-2", "c-3", "unknown", now - 2 * DAY)])
    await events.ratings(uow, scorer, [events.Rating("t-2", "c-3", 2, now - DAY)])
    indicators = (await queries.score_of(uow, "c-3"))["indicators"]
    assert {k: indicators[k] for k in ("activity_7d", "activity_90d", "activity_prev_60d", "complaints_90d",
                                       "open_tickets", "sla_breaches_90d", "last_csat")} == {
        "activity_7d": 3, "activity_90d": 4, "activity_prev_60d": 1, "complaints_90d": 1, "open_tickets": 1,
        "sla_breaches_90d": 1, "last_csat": 2}
    await events.tickets_changed(uow, scorer, "reopened", [events.TicketChange("t-2", "c-3", "unknown", now)])
    assert (await queries.score_of(uow, "c-3"))["indicators"]["open_tickets"] == 2


async def scenario_an_erased_customer_loses_the_score_and_later_events_are_skipped(uow):
    scorer = new_scorer()
    await events.orders_paid(uow, scorer, [paid("o-1", "c-4", 20 * DAY), paid("o-2", "c-5", 20 * DAY)])
    await merges.erase(uow, {"c-4": datetime.now(UTC)})
    assert await not_scored(uow, "c-4")
    await events.orders_paid(uow, scorer, [paid("o-3", "c-4", DAY), paid("o-4", "c-5", DAY)])
    assert await not_scored(uow, "c-4")
    assert (await queries.score_of(uow, "c-5"))["indicators"]["orders"] == 2
    await merges.erase(uow, {"c-4": datetime.now(UTC)})  # a replay changes nothing
    assert await not_scored(uow, "c-4")


async def scenario_a_merge_moves_history_once_and_an_unmerge_moves_it_back(uow):
    scorer, now = new_scorer(), datetime.now(UTC)
    await events.orders_paid(uow, scorer, [paid("o-s", "c-s", 60 * DAY), paid("o-d", "c-d", 30 * DAY)])
    await events.interactions(uow, scorer, [events.Interaction("c-d", now - 2 * DAY)])
    merge = merges.Merge("c-s", "c-d", now, "e-1")
    assert await merges.merge(uow, scorer, [merge]) == ["c-s"]
    survivor = (await queries.score_of(uow, "c-s"))["indicators"]
    assert survivor["orders"] == 2 and survivor["activity_7d"] == 1
    assert await not_scored(uow, "c-d")
    assert await merges.merge(uow, scorer, [merges.Merge("c-s", "c-d", now, "e-2")]) == []  # seen: no change
    assert await merges.unmerge(uow, scorer, [merges.Merge("c-s", "c-d", now)]) == ["c-s", "c-d"]
    for customer_id in ("c-s", "c-d"):
        assert (await queries.score_of(uow, customer_id))["indicators"]["orders"] == 1
    assert (await queries.score_of(uow, "c-d"))["indicators"]["activity_7d"] == 1
    assert await merges.unmerge(uow, scorer, [merges.Merge("c-s", "c-d", now)]) == []


async def scenario_scores_are_paged_highest_value_at_risk_first(uow):
    scorer = new_scorer()
    await events.orders_paid(uow, scorer, [paid(f"o-{i}", f"c-p{i}", 200 * DAY, str(100 + 10 * i))
                                           for i in range(5)])
    seen, after = [], None
    while True:
        rows, more = await queries.scores_page(uow, level=None, sort="value_at_risk", after=after, limit=2)
        seen += rows
        if not more:
            break
        after = (rows[-1]["value_at_risk"], rows[-1]["customer_id"])
    assert [r["customer_id"] for r in seen] == [f"c-p{i}" for i in reversed(range(5))]
    by_score, more = await queries.scores_page(uow, level="low", sort="score", after=None, limit=10)
    assert not more and all(r["level"] == "low" for r in by_score)
    assert [r["score"] for r in by_score] == sorted((r["score"] for r in by_score), reverse=True)


async def scenario_before_any_fit_the_model_in_force_is_the_prior(uow):
    model = await queries.model_in_force(uow, 90.0)
    assert model["kind"] == "prior" and model["report"]["holdout"] is None
    assert model["params"]["bgnbd"] == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


SCENARIOS = [scenario_a_paid_order_is_scored_and_a_level_is_announced_once,
             scenario_refunds_add_up_and_cancelled_orders_stop_counting,
             scenario_activity_tickets_and_ratings_become_indicators,
             scenario_an_erased_customer_loses_the_score_and_later_events_are_skipped,
             scenario_a_merge_moves_history_once_and_an_unmerge_moves_it_back,
             scenario_scores_are_paged_highest_value_at_risk_first,
             scenario_before_any_fit_the_model_in_force_is_the_prior]


async def _seed(units, customers: int) -> None:
    scorer = new_scorer()
    async with units() as uow:
        await events.orders_paid(uow, scorer, [paid(f"o-{i}-a", f"c-r{i}", (5 + 4 * i) * DAY) for i in range(customers)]
                                 + [paid(f"o-{i}-b", f"c-r{i}", 2 * DAY) for i in range(0, customers, 3)])
        await uow.commit()


async def refit_scenario_a_refit_needs_enough_history(units):
    await _seed(units, 3)
    with pytest.raises(NotEnoughHistory) as refused:
        await refit(units, new_scorer(), horizon_days=90.0, min_customers=10, actor="sup-1")
    error = refused.value
    assert (error.status, error.code, error.title) == (422, "not-enough-history", "Not enough history")
    assert error.extensions == {"customers": 3, "needed": 10}


async def refit_scenario_one_refit_runs_at_a_time(units):
    await _seed(units, 12)
    async with units(read_only=True) as holder:
        assert await holder.repo.try_refit_lock()
        try:
            with pytest.raises(RefitRunning) as refused:
                await refit(units, new_scorer(), horizon_days=90.0, min_customers=10, actor="sup-1")
        finally:
            await holder.repo.release_refit_lock()
    assert (refused.value.status, refused.value.code, refused.value.title) == (409, "conflict", "Conflict")


async def refit_scenario_a_refit_puts_its_model_in_force_and_rescores_everybody(units):
    await _seed(units, 12)
    scorer, fitted = new_scorer(), []
    result = await refit(units, scorer, horizon_days=90.0, min_customers=10, actor="sup-1", observe=fitted.append)
    assert result["kind"] == "bgnbd" and result["report"]["customers"] == 12  # shorter than the horizon
    assert result["rescored"] == 12 and scorer.scored["refit"] == 12 and len(fitted) == 1
    async with units(read_only=True) as uow:
        model = await queries.model_in_force(uow, 90.0)
        assert (model["version"], model["created_by"]) == (result["version"], "sup-1")
        assert (await queries.score_of(uow, "c-r7"))["model_version"] == result["version"]
    assert (await scorer.store.current(uow)).version == result["version"]


REFIT_SCENARIOS = [refit_scenario_a_refit_needs_enough_history, refit_scenario_one_refit_runs_at_a_time,
                   refit_scenario_a_refit_puts_its_model_in_force_and_rescores_everybody]
