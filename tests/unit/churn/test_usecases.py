"""The churn use cases on the in-memory repository (the same scenarios run on PostgreSQL in
tests/service/churn/test_usecases_on_postgres.py), and what only the fake can observe cheaply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from crm_churn.usecases import events
from crm_churn.usecases.refit import scheduled_refit

from tests.unit.churn.fakes import FakeChurnRepository, fake_units
from tests.unit.churn.scenarios import REFIT_SCENARIOS, SCENARIOS, new_scorer, paid
from tests.unit.fakes import FakeUnitOfWork


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
async def test_scenario(scenario):
    uow = FakeUnitOfWork(FakeChurnRepository())
    await scenario(uow)
    assert uow.commits == 0  # use cases never commit


@pytest.mark.parametrize("scenario", REFIT_SCENARIOS, ids=lambda s: s.__name__.removeprefix("refit_scenario_"))
async def test_refit_scenario(scenario):
    await scenario(fake_units(FakeChurnRepository()))


async def test_a_first_score_announces_the_level_in_the_unit_of_work_and_a_rescore_does_not():
    uow, scorer = FakeUnitOfWork(FakeChurnRepository()), new_scorer()
    await events.orders_paid(uow, scorer, [paid("o-1", "c-1", timedelta(days=200))])
    await events.orders_paid(uow, scorer, [paid("o-1", "c-1", timedelta(days=200))])  # redelivered order
    assert [e.type for e in uow.pending] == ["crm.churn.risk.changed"]
    assert uow.pending[0].data["old_level"] is None and uow.pending[0].data["customer_id"] == "c-1"
    assert uow.repo.versions == {"c-1": 2}  # every event batch moves the history version on


async def test_a_batch_only_about_erased_customers_changes_nothing():
    repo = FakeChurnRepository(erased={"c-gone": datetime.now(UTC)})
    uow = FakeUnitOfWork(repo)
    await events.orders_paid(uow, new_scorer(), [paid("o-1", "c-gone", timedelta(days=3))])
    assert repo.orders == {} and repo.versions == {} and uow.pending == []


async def test_an_unknown_ticket_change_is_a_bug_not_a_rule():
    with pytest.raises(ValueError):
        await events.tickets_changed(FakeUnitOfWork(FakeChurnRepository()), new_scorer(), "lost", [])


async def test_a_scheduled_refit_skips_a_short_history_and_a_running_refit():
    repo = FakeChurnRepository()
    units = fake_units(repo)
    await scheduled_refit(units, new_scorer(), horizon_days=90.0, min_customers=10)  # too short: logged
    repo.refit_locked = True
    await scheduled_refit(units, new_scorer(), horizon_days=90.0, min_customers=0)  # running: logged
    assert repo.models == [] and repo.refit_locked
