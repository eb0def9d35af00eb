"""Scenarios of the PII key rotation's and the segments' use cases, each ``async def scenario_x(world)``.

A world (``fakes_pii.FakePiiWorld``/``FakeSegmentWorld`` in the unit tier; their PostgreSQL
counterparts in tests/service/profile/test_pii_and_segment_scenarios.py) seeds rows, opens units
of work (``world.units()``) and plays the other actors. The same scenarios on both prove the
in-memory repositories honest.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from crm_profile.domain.pii import PiiVault
from crm_profile.domain.pii_rotation import PiiKeyMismatch, RotationRefused, StoredCustomer
from crm_profile.repository import external_field, name_index_keys
from crm_profile.usecases import pii_rotation as rotation
from crm_profile.usecases import segments
from cryptography.exceptions import InvalidTag

from tests.unit.profile.fakes_pii import Shopper, expected_rfm

OLD_KEY = b"o" * 32
NEW_KEY = b"n" * 16 + os.urandom(16)
WRONG_KEY = b"w" * 32
CURRENCY = "CNY"
NOW = datetime.now(UTC).replace(microsecond=0)


def customer(vault: PiiVault, customer_id: str, *, email: str | None = None, phone: str | None = None,
             name: str | None = None, address: str | None = None,
             external: dict[str, str] | None = None) -> StoredCustomer:
    """A customer's rows as the service writes them under ``vault``."""
    values = {"email": email, "phone": phone, "name": name, "address": address}
    return StoredCustomer(
        customer_id=customer_id, sealed={k: vault.seal(k, v) for k, v in values.items()},
        bidx={k: vault.index(k, values[k]) for k in ("email", "phone")},
        name_index=frozenset(name_index_keys(vault, name)),
        external={kind: (vault.seal(external_field(kind), value), vault.index(external_field(kind), value))
                  for kind, value in (external or {}).items()})


def three_customers(vault: PiiVault) -> list[StoredCustomer]:
    return [customer(vault, "c-1", email="mei@example.com", phone="+8613800138000", name="Mei Chen",
                     address="1 Nanjing Rd", external={"erp": "E-1001"}),
            customer(vault, "c-2", email="wei@example.com", name="Wei Li"),
            customer(vault, "c-3")]  # erased: nothing sealed


def opens(vault: PiiVault, stored: list[StoredCustomer]) -> int:
    """How many of the stored ciphertexts open with ``vault``."""
    count = 0
    for c in stored:
        sealed = [(k, v) for k, v in c.sealed.items() if v is not None]
        sealed += [(external_field(kind), enc) for kind, (enc, _) in c.external.items()]
        for name, value in sealed:
            try:
                vault.open(name, value)
                count += 1
            except (InvalidTag, ValueError):  # another key
                pass
    return count


# ---- PII key rotation

async def scenario_a_rotation_moves_everything_under_the_new_key_and_a_rerun_changes_nothing(world):
    old, new = PiiVault(OLD_KEY), PiiVault(NEW_KEY)
    await world.seed(three_customers(old))
    checked = await rotation.check_pii_keys(world.units(), OLD_KEY, NEW_KEY)
    assert (checked.customers, checked.ciphertexts, checked.under_old_key, checked.unreadable) == (3, 7, 7, 0)
    assert checked.customers_to_rewrite == 2 and checked.indexes_inconsistent == 0

    report = await rotation.rotate_pii_key(world.units(), OLD_KEY, NEW_KEY, batch_size=2, service_grace_s=0)
    assert report.complete and report.batches == 2 and report.customers == 3
    assert report.customers_rewritten == 2 and report.ciphertexts_resealed == 7
    assert report.name_index_rows == len(name_index_keys(new, "Mei Chen")) + len(name_index_keys(new, "Wei Li"))
    stored = await world.stored()
    assert opens(new, stored) == 7 and opens(old, stored) == 0
    mei = stored[0]
    assert mei.bidx["email"] == new.index("email", "mei@example.com")
    assert mei.name_index == name_index_keys(new, "Mei Chen")
    assert mei.external["erp"][1] == new.index("external:erp", "E-1001")
    assert await world.journal() == [(old.key_id, new.key_id, True)]

    again = await rotation.rotate_pii_key(world.units(), OLD_KEY, NEW_KEY, service_grace_s=0)
    assert again.complete and again.customers_rewritten == 0 and await world.stored() == stored
    async with world.units()() as uow:
        assert await rotation.service_key_problem(uow, new) is None
        assert "still the old key" in await rotation.service_key_problem(uow, old)


async def scenario_a_wrong_old_key_is_refused_before_anything_is_written(world):
    await world.seed(three_customers(PiiVault(WRONG_KEY)))
    before = await world.stored()
    checked = await rotation.check_pii_keys(world.units(), OLD_KEY, NEW_KEY)
    assert checked.unreadable == 2 and checked.unreadable_examples == ["c-1/email", "c-2/email"]
    with pytest.raises(RotationRefused, match="neither key"):
        await rotation.rotate_pii_key(world.units(), OLD_KEY, NEW_KEY, service_grace_s=0)
    assert await world.stored() == before and await world.journal() == []


async def scenario_an_interrupted_rotation_keeps_the_service_out_until_it_is_finished(world):
    old, new = PiiVault(OLD_KEY), PiiVault(NEW_KEY)
    await world.seed(three_customers(old))
    first = await rotation.rotate_pii_key(world.units(), OLD_KEY, NEW_KEY, batch_size=1, stop_after_batches=1,
                                          service_grace_s=0)
    assert not first.complete and first.verification is None and first.ciphertexts_resealed == 5
    assert await world.journal() == [(old.key_id, new.key_id, False)]
    for vault in (old, new):
        with pytest.raises(PiiKeyMismatch, match="has not finished"):
            await rotation.check_service_key(world.units(), vault, timeout_s=1)
    resumed = await rotation.rotate_pii_key(world.units(), OLD_KEY, NEW_KEY, service_grace_s=0)
    assert resumed.complete and resumed.ciphertexts_resealed == 2
    await rotation.check_service_key(world.units(), new, timeout_s=1)


async def scenario_a_running_service_or_rotation_refuses_the_rotation(world):
    await world.seed(three_customers(PiiVault(OLD_KEY)))
    before = await world.stored()
    async with world.service_connected():
        with pytest.raises(RotationRefused, match="still connected"):
            await rotation.rotate_pii_key(world.units(), OLD_KEY, NEW_KEY, service_grace_s=0)
    async with world.rotation_running():
        with pytest.raises(RotationRefused, match="another PII key rotation"):
            await rotation.rotate_pii_key(world.units(), OLD_KEY, NEW_KEY, service_grace_s=0)
    assert await world.stored() == before and await world.journal() == []
    # Refused runs released the lock: the next one runs.
    assert (await rotation.rotate_pii_key(world.units(), OLD_KEY, NEW_KEY, service_grace_s=0)).complete


async def scenario_the_service_refuses_a_key_that_opens_none_of_the_values(world):
    old = PiiVault(OLD_KEY)
    await rotation.check_service_key(world.units(), PiiVault(WRONG_KEY), timeout_s=1)  # nothing stored yet
    await world.seed(three_customers(old))
    await rotation.check_service_key(world.units(), old, timeout_s=1)
    with pytest.raises(PiiKeyMismatch, match="opens none of the 6 stored values"):
        await rotation.check_service_key(world.units(), PiiVault(WRONG_KEY), timeout_s=1)


PII_SCENARIOS = [
    scenario_a_rotation_moves_everything_under_the_new_key_and_a_rerun_changes_nothing,
    scenario_a_wrong_old_key_is_refused_before_anything_is_written,
    scenario_an_interrupted_rotation_keeps_the_service_out_until_it_is_finished,
    scenario_a_running_service_or_rotation_refuses_the_rotation,
    scenario_the_service_refuses_a_key_that_opens_none_of_the_values,
]


# ---- segments

def shoppers() -> list[Shopper]:
    return [
        Shopper("s-1", orders=5, last_order_at=NOW - timedelta(days=1), spend=Decimal("900.00"), tags=("vip",)),
        Shopper("s-2", orders=1, last_order_at=NOW - timedelta(days=200), spend=Decimal("20.00")),
        Shopper("s-3", orders=2, last_order_at=NOW - timedelta(days=30), spend=Decimal("150.00"), tags=("vip",)),
        Shopper("s-4", orders=0, tags=("vip", "staff")),
        Shopper("s-5", orders=3, last_order_at=NOW - timedelta(days=7), spend=Decimal("150.00"), erased=True),
    ]


async def scenario_a_custom_segment_follows_its_rule_for_the_customers_asked(world):
    await world.seed(shoppers())
    await world.define_segment("vip", {"has_tag": "vip"})
    await world.define_segment("not-staff", {"not": {"has_tag": "staff"}})
    async with world.units()() as uow:
        changes = await segments.refresh_segments(uow, CURRENCY, ["s-1", "s-4", "s-5"], segment_id="vip")
        assert changes == 2  # s-5 is erased: in no segment
        assert await segments.refresh_segments(uow, CURRENCY, []) == 0
        await uow.commit()
    assert await world.members("vip") == {"s-1", "s-4"} and await world.members("not-staff") == set()
    async with world.units()() as uow:
        assert await segments.refresh_segments(uow, CURRENCY) == 1 + 3  # everybody, every segment
        await uow.commit()
    assert await world.members("vip") == {"s-1", "s-3", "s-4"}
    assert await world.members("not-staff") == {"s-1", "s-2", "s-3"}
    events = await world.events()
    assert ("s-1", "vip", True) in events and len(events) == 6
    async with world.units()() as uow:
        assert await segments.refresh_segments(uow, CURRENCY) == 0  # nothing changed: no events
        sizes = await uow.repo.segment_sizes()
    assert sizes == {"vip": 3, "not-staff": 3}


async def scenario_the_refresh_scores_everybody_and_runs_custom_segments(world):
    base = shoppers()
    await world.seed(base)
    await world.define_segment("vip", {"has_tag": "vip"})
    result = await segments.refresh_all(world.units(), CURRENCY, chunk_size=2)
    expected = expected_rfm(base)
    assert result == segments.RefreshResult(scored=len(expected), membership_changes=3, deferred=0)
    assert await world.rfm() == expected and set(expected) == {"s-1", "s-2", "s-3"}
    assert await world.members("vip") == {"s-1", "s-3", "s-4"}
    rfm_entered = [e for e in await world.events() if e[1].startswith("rfm:")]
    assert sorted(rfm_entered) == sorted((c, f"rfm:{v[3]}", True) for c, v in expected.items())
    assert await segments.refresh_all(world.units(), CURRENCY) == segments.RefreshResult(len(expected), 0, 0)
    async with world.units()() as uow:
        assert await uow.repo.customer_count() == 5
        sizes = await uow.repo.segment_sizes()
    assert sum(n for s, n in sizes.items() if s.startswith("rfm:")) == 3 and sizes["vip"] == 3


async def scenario_customers_an_event_batch_holds_are_deferred_not_waited_for(world):
    base = shoppers()
    await world.seed(base)
    async with world.holding(["s-2"]):
        result = await segments.refresh_all(world.units(), CURRENCY, chunk_size=2, passes=2, pause_s=0.01)
    assert result == segments.RefreshResult(scored=3, membership_changes=0, deferred=1)
    assert set(await world.rfm()) == {"s-1", "s-3"}
    done = await segments.run_refresh(world.units(), CURRENCY)
    assert done == segments.RefreshResult(3, 0, 0) and await world.rfm() == expected_rfm(base)


async def scenario_a_second_refresh_does_not_run_while_one_does(world):
    await world.seed(shoppers())
    took: list[float] = []
    async with world.refresh_running():
        assert await segments.refresh_all(world.units(), CURRENCY) is None
        assert await segments.run_refresh(world.units(), CURRENCY, took=took.append) is None
    assert took == [] and await world.rfm() == {}
    shown = asyncio.Event()

    async def then():
        shown.set()
    assert await segments.run_refresh(world.units(), CURRENCY, took=took.append, then=then) is not None
    assert len(took) == 1 and shown.is_set()


SEGMENT_SCENARIOS = [
    scenario_a_custom_segment_follows_its_rule_for_the_customers_asked,
    scenario_the_refresh_scores_everybody_and_runs_custom_segments,
    scenario_customers_an_event_batch_holds_are_deferred_not_waited_for,
    scenario_a_second_refresh_does_not_run_while_one_does,
]
