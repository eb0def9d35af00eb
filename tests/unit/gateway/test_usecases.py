"""The gateway's use cases on the in-memory unit of work (the same scenarios run on PostgreSQL in
tests/service/gateway/test_gateway_usecases.py)."""

from __future__ import annotations

import pytest

from tests.unit.fakes import FakeUnitOfWork
from tests.unit.gateway.fakes import InMemoryGatewayRepository
from tests.unit.gateway.scenarios import SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
async def test_scenario(scenario):
    uow = FakeUnitOfWork(InMemoryGatewayRepository())
    expected = await scenario(uow)
    assert [event.id for event in uow.published] == expected
    assert uow.pending == []  # nothing left uncommitted
