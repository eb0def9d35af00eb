"""The loyalty use-case scenarios of the unit tier, on the real unit of work over PostgreSQL: the
in-memory repository (``tests/unit/loyalty/fakes.py``) and ``crm_loyalty.repository`` must agree."""

from __future__ import annotations

import pytest
from crm_loyalty.domain.programme import DEFAULT_PROGRAMME
from crm_loyalty.repository import LoyaltyRepository
from crm_loyalty.usecases.common import ProgrammeStore
from crm_shared.uow import unit_of_work
from sqlalchemy.ext.asyncio import create_async_engine

from tests.unit.loyalty.scenarios import SCENARIOS


@pytest.fixture
async def engine(make_database):
    engine = create_async_engine(make_database("loyalty").url)
    async with unit_of_work(engine, LoyaltyRepository) as uow:  # version 1, as the app's resources seed it
        await ProgrammeStore.seed(uow, DEFAULT_PROGRAMME)
        await uow.commit()
    yield engine
    await engine.dispose()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
async def test_scenario_on_postgres(engine, scenario):
    async with unit_of_work(engine, LoyaltyRepository) as uow:  # rolled back on leaving (the jobs commit)
        await scenario(uow)
