"""The profile's use cases on the in-memory repository: the scenarios, plus what only a fake shows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from crm_profile.domain.records import RefundRequest, TimelineEntry
from crm_profile.usecases import activity, merges

from tests.unit.fakes import FakeUnitOfWork
from tests.unit.profile.fakes import InMemoryProfileRepository
from tests.unit.profile.scenarios import CURRENCY, SCENARIOS, seed

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_scenario(scenario):
    uow = FakeUnitOfWork(InMemoryProfileRepository())
    await scenario(uow)
    assert uow.commits == 0  # use cases never commit


async def test_a_merge_refreshes_the_survivors_segments_and_an_unmerge_both():
    repo = InMemoryProfileRepository()
    uow = FakeUnitOfWork(repo)
    await seed(uow, ("c-1", "mei@example.com"), ("c-2", "mei@example.com"))
    await repo.create_segment(segment_id="vip", name="VIP", description=None, rule={"has_tag": "vip"}, created_by="s")
    repo.refreshed.clear()
    await merges.merge_profiles(uow, survivor="c-1", merged="c-2", identifier="email", reason="r", actor="s",
                                currency=CURRENCY)
    await merges.unmerge_profiles(uow, survivor="c-1", merged="c-2", reason="r", actor="s", currency=CURRENCY)
    assert repo.refreshed == [(["c-1"], "vip"), (["c-1", "c-2"], "vip")]


def test_refunds_of_one_order_in_a_batch_add_up_and_a_cancellation_wins():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    later = datetime(2026, 1, 2, tzinfo=UTC)
    folded = activity.refund_requests([RefundRequest("o-1", Decimal("5"), later, False),
                                       RefundRequest("o-2", Decimal("1"), at, False),
                                       RefundRequest("o-1", Decimal("7"), at, True)])
    assert folded == [RefundRequest("o-1", Decimal("12"), later, True), RefundRequest("o-2", Decimal("1"), at, False)]


def test_only_product_views_with_a_category_count_as_views():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    entries = [TimelineEntry("c-1", at, "interaction.product_view", "web", {"category": "shoes"}, "e-1"),
               TimelineEntry("c-1", at, "interaction.product_view", "web", {"category": "  "}, "e-2"),
               TimelineEntry("c-1", at, "interaction.search", "web", {"category": "hats"}, "e-3"),
               TimelineEntry("c-1", at, "interaction.product_view", "web", {}, "e-4")]
    assert [v.category for v in activity.category_views(entries)] == ["shoes"]
