"""The loyalty use cases on the in-memory repository (the same scenarios run on PostgreSQL in
``tests/service/loyalty/test_loyalty_usecases.py``)."""

from __future__ import annotations

import pytest
from crm_loyalty.usecases import orders
from crm_loyalty.usecases.common import ProgrammeStore

from tests.unit.loyalty.fakes import new_unit
from tests.unit.loyalty.scenarios import SCENARIOS, _id, paid


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
async def test_scenario(scenario):
    await scenario(new_unit())


async def test_a_paid_order_publishes_its_events_in_the_unit_of_work_and_never_commits():
    uow, customer = new_unit(), _id("c")
    await orders.orders_paid(uow, ProgrammeStore(), [paid(customer, _id("o"), "10")])
    assert uow.commits == 0 and uow.published == []
    assert [e.type for e in uow.pending] == ["crm.loyalty.points.earned", "crm.loyalty.tier.changed"]
    assert uow.repo.accounts[customer]["pending"] == 10


async def test_the_store_parses_each_version_once():
    uow, store = new_unit(), ProgrammeStore()
    first = await store.timeline(uow)
    assert (await store.timeline(uow)).current is first.current
