"""The churn use-case scenarios of the unit tier (tests/unit/churn/scenarios.py) on the real unit of
work and a migrated churn database: what proves the in-memory repository honest."""

from __future__ import annotations

import pytest
from crm_churn.repository import ChurnRepository
from crm_shared.uow import unit_of_work
from sqlalchemy.ext.asyncio import create_async_engine

from tests.unit.churn.scenarios import REFIT_SCENARIOS, SCENARIOS


@pytest.fixture
async def engine(make_database):
    engine = create_async_engine(make_database("churn").url)
    yield engine
    await engine.dispose()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
async def test_scenario(engine, scenario):
    async with unit_of_work(engine, ChurnRepository) as uow:
        await scenario(uow)  # never committed: leaving rolls back


@pytest.mark.parametrize("scenario", REFIT_SCENARIOS, ids=lambda s: s.__name__.removeprefix("refit_scenario_"))
async def test_refit_scenario(engine, scenario):
    await scenario(lambda read_only=False: unit_of_work(engine, ChurnRepository, read_only=read_only))
