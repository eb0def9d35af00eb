"""The PII key rotation's and the segments' use cases on the in-memory unit of work (the same
scenarios run on PostgreSQL in tests/service/profile/test_pii_and_segment_scenarios.py), and the
refusals only the fake can stage cheaply."""

from __future__ import annotations

import pytest
from crm_profile.domain.pii import PiiVault
from crm_profile.domain.pii_rotation import RotationRefused
from crm_profile.usecases import pii_rotation as rotation

from tests.unit.profile.fakes_pii import FakePiiWorld, FakeSegmentWorld
from tests.unit.profile.scenarios_pii import NEW_KEY, OLD_KEY, PII_SCENARIOS, SEGMENT_SCENARIOS, three_customers


@pytest.mark.parametrize("scenario", PII_SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
async def test_pii_rotation(scenario):
    await scenario(FakePiiWorld())


@pytest.mark.parametrize("scenario", SEGMENT_SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
async def test_segments(scenario):
    await scenario(FakeSegmentWorld())


async def test_a_rotation_to_the_same_key_or_in_empty_batches_is_refused():
    world = FakePiiWorld()
    with pytest.raises(RotationRefused, match="the new key is the old key"):
        await rotation.rotate_pii_key(world.units(), OLD_KEY, OLD_KEY)
    with pytest.raises(ValueError, match="batch_size"):
        await rotation.rotate_pii_key(world.units(), OLD_KEY, NEW_KEY, batch_size=0)


async def test_a_database_without_the_journal_is_refused_and_the_lock_released():
    world = FakePiiWorld()
    await world.seed(three_customers(PiiVault(OLD_KEY)))
    world.rows.has_journal = False
    with pytest.raises(RotationRefused, match="lacks pii_key_rotations"):
        await rotation.rotate_pii_key(world.units(), OLD_KEY, NEW_KEY)
    assert not world.rows.rotation_locked
    async with world.units()() as uow:  # no journal: the service's check goes by the values alone
        assert await rotation.service_key_problem(uow, PiiVault(OLD_KEY)) is None


async def test_a_service_that_stays_connected_is_waited_for_then_refused(monkeypatch):
    world = FakePiiWorld()
    async with world.service_connected():
        with pytest.raises(RotationRefused, match=r"\(1 sessions named crm-profile\)"):
            await rotation.rotate_pii_key(world.units(), OLD_KEY, NEW_KEY, service_grace_s=0.3)
    assert not world.rows.rotation_locked and world.rows.journal == []
