"""The tickets use cases on the in-memory unit of work: the shared scenarios, and what only the fake
shows (events published on commit, nothing committed by a use case)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from crm_tickets.usecases import sla, tickets, workflow

from tests.unit.tickets.fakes import fake_uow
from tests.unit.tickets.scenarios import NOW, SCENARIOS, _open, _policies, _queue

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
async def test_scenario(scenario):
    uow = fake_uow()
    await scenario(uow)
    assert uow.commits == 0, "use cases never commit"


async def test_opening_and_moving_a_ticket_publish_its_events_in_the_unit_of_work():
    uow = fake_uow()
    store = await _policies(uow)
    await _queue(uow, "q", "round_robin", ["a1"], ["delivery"])
    ticket = await _open(uow, store, "c-1")
    await workflow.change_status(uow, store, ticket_id=ticket.ticket_id, target="resolved", actor="a1", now=NOW)
    assert uow.published == []
    await uow.commit()
    assert [e.type for e in uow.published] == ["crm.tickets.ticket.opened", "crm.tickets.ticket.assigned",
                                               "crm.tickets.ticket.resolved"]
    await tickets.rate(uow, ticket_id=ticket.ticket_id, only_customer="c-1", score=5, comment=None,
                       recorded_by=None, now=NOW)
    await uow.rollback()
    assert len(uow.published) == 3


async def test_the_sweep_commits_each_chunk_and_counts_breaches():
    uow = fake_uow()
    store = await _policies(uow)
    for _ in range(3):
        await _open(uow, store, "c-1", category="nothing")
    await uow.commit()
    uow.published.clear()

    class Units:
        async def __aenter__(self):
            return uow

        async def __aexit__(self, *exc):
            await uow.rollback()

    assert await sla.sweep(Units, as_of=NOW + timedelta(days=30), batch=2) == 6
    assert uow.commits == 1 + 2  # the opening, then two chunks of two
    assert {e.type for e in uow.published} == {"crm.tickets.ticket.sla_breached"}
    assert uow.repo.metric_totals == {("sla_breaches", "first_response"): 3, ("sla_breaches", "resolution"): 3}
