"""The profile's use-case scenarios (tests/unit/profile/scenarios.py) on the real unit of work.

The same scenarios as the unit tier, on ``unit_of_work(engine, ProfileRepository)`` over a migrated
database: what proves the in-memory repository honest. Each runs in one transaction, rolled back.
"""

from __future__ import annotations

import pytest
from crm_profile.repository import ProfileRepository
from crm_shared.uow import unit_of_work
from sqlalchemy.ext.asyncio import create_async_engine

from tests.unit.profile.scenarios import SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_scenario_on_postgres(make_database, scenario):
    engine = create_async_engine(make_database("profile").url)
    try:
        async with unit_of_work(engine, ProfileRepository) as uow:
            await scenario(uow)
    finally:
        await engine.dispose()
