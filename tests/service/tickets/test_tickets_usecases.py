"""The tickets use-case scenarios of the unit tier (tests/unit/tickets/scenarios.py) on the real unit
of work: TicketsRepository's SQL on a migrated PostgreSQL database. The same outcomes as on the
in-memory repository are what prove the fake honest. Each scenario runs in one unit of work that
is rolled back (use cases never commit)."""

from __future__ import annotations

import pytest
from crm_shared.uow import unit_of_work
from crm_tickets.repository import TicketsRepository
from sqlalchemy.ext.asyncio import create_async_engine

from tests.unit.tickets.scenarios import SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
async def test_scenario_on_postgresql(make_database, scenario):
    engine = create_async_engine(make_database("tickets").url)
    try:
        async with unit_of_work(engine, TicketsRepository) as uow:
            await scenario(uow)
    finally:
        await engine.dispose()
