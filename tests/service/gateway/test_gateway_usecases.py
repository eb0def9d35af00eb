"""The gateway's use-case scenarios (tests/unit/gateway/scenarios.py) on the real unit of work:
the repository's SQL and the outbox on a migrated gateway database. What passes here and on the
in-memory fake keeps the fake honest."""

from __future__ import annotations

import pytest
from crm_gateway.repository import GatewayRepository
from crm_shared.uow import unit_of_work
from sqlalchemy.ext.asyncio import create_async_engine

from tests.unit.gateway.scenarios import SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
async def test_scenario_on_postgresql(make_database, scenario):
    database = make_database("gateway")
    engine = create_async_engine(database.url)
    try:
        async with unit_of_work(engine, GatewayRepository) as uow:
            expected = await scenario(uow)
    finally:
        await engine.dispose()
    assert await database.fetch_texts("SELECT event_id FROM outbox ORDER BY id") == expected
