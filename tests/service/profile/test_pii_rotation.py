"""Rotating PII_KEY (crm_profile/pii_rotation.py): the whole procedure on the real profile service and
PostgreSQL — register, stop, rotate (refused with a wrong key, interrupted, resumed through the
command), start with the new key, find everyone again. The pure planning is tested in
tests/unit/profile/test_pii_rotation_plan.py."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from crm_profile.domain.pii import PiiVault
from crm_profile.pii_rotation import (
    PiiKeyMismatch,
    RotationRefused,
    check_pii_keys,
    check_service_key,
    rotate_pii_key,
    units,
)
from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import create_async_engine

from tests.harness.events import customer_registered, new_customer_id
from tests.harness.infra import TEST_PII_KEY, wait_until

OLD_KEY = base64.b64decode(TEST_PII_KEY)
NEW_KEY = b"n" * 16 + os.urandom(16)
WRONG_KEY = b"w" * 32
SUPERVISOR = Identity(subject="sup-1", role=Role.SUPERVISOR)
COMMAND = Path(sys.executable).with_name("crm-profile-rotate-pii-key")


# ---- the procedure, end to end

async def _profile(service, customer: str) -> dict | None:
    async with service.client(Identity(subject=customer, role=Role.CUSTOMER, customer_id=customer)) as http:
        response = await http.get(f"/v1/profiles/{customer}")
    return response.json() if response.status_code == 200 else None


async def _found(service, **params) -> list[str]:
    async with service.client() as http:
        response = await http.get("/v1/profiles", params=params)
    assert response.status_code == 200, response.text
    return [match["customer_id"] for match in response.json()["items"]]


async def _raw(database) -> dict:
    """Every row PII_KEY protects, as stored."""
    return {
        "customers": [dict(r) for r in await database.fetch(
            "SELECT customer_id, email_enc, email_bidx, phone_enc, phone_bidx, name_enc, address_enc "
            "FROM customers ORDER BY customer_id")],
        "names": sorted(tuple(r) for r in await database.fetch(
            "SELECT customer_id, prefix_bidx FROM customer_name_index")),
        "external": [dict(r) for r in await database.fetch(
            "SELECT customer_id, kind, value_enc, value_bidx FROM customer_external_ids ORDER BY 1, 2")],
        "journal": await database.fetchval("SELECT count(*) FROM pii_key_rotations"),
    }


def _last_log(tmp_path: Path) -> str:
    """The log of the profile process started last (the start_service fixture numbers them)."""
    logs = sorted(tmp_path.glob("profile-*.log"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    return logs[-1].read_text(errors="replace")


def _opens(vault: PiiVault, field_name: str, sealed: bytes) -> bool:
    try:
        vault.open(field_name, sealed)
    except InvalidTag:
        return False
    return True


def _under(vault: PiiVault, raw: dict) -> tuple[int, int]:
    """How many stored ciphertexts open with ``vault``, of how many."""
    sealed = [(name, row[f"{name}_enc"]) for row in raw["customers"] for name in ("email", "phone", "name", "address")
              if row[f"{name}_enc"] is not None]
    sealed += [(f"external:{row['kind']}", row["value_enc"]) for row in raw["external"]]
    return sum(_opens(vault, name, value) for name, value in sealed), len(sealed)


async def test_a_rotation_refused_interrupted_and_resumed_keeps_every_profile_and_lookup(
        broker, make_database, start_service, tmp_path):
    database = make_database("profile")
    service = start_service("profile", database)
    # Ids in this order, so that the first batch of two holds PII (the last two will not).
    mei, wei, li, keep, dup, gone = (f"{i}-{new_customer_id()}" for i in range(6))
    await broker.publish(TOPIC_CUSTOMERS, [
        customer_registered(mei, email="Mei.Chen@Example.com", name="Mei Chenxiang"),
        customer_registered(wei, email="wei.li@example.com", name="Wei Li"),  # the same phone as Mei
        customer_registered(li, email="li@example.cn", name="李伟"),
        customer_registered(keep, email="twin@example.com", name="Twin Keep"),
        customer_registered(dup, email="TWIN@example.com", name="Twin Dup"),
        customer_registered(gone, email="gone@example.com", name="Gone Soon")])
    everyone = [mei, wei, li, keep, dup, gone]

    async def all_registered():
        return all([await _profile(service, c) for c in everyone])
    await wait_until(all_registered, what="six customers registered")
    async with service.client() as http:
        edited = await http.patch(f"/v1/profiles/{mei}", json={
            "address": "1 Nanjing Rd", "external_ids": {"erp": "E-1001-77", "wechat": "oX5f-abc123"}})
        assert edited.status_code == 200, edited.text
    async with service.client(SUPERVISOR) as http:
        merged = await http.post(f"/v1/profiles/{keep}/merge", json={
            "duplicate_id": dup, "identifier": "email", "reason": "verified, ticket T-1"},
            headers={"Idempotency-Key": str(uuid.uuid4())})
        erased = await http.post(f"/v1/profiles/{gone}/erasure", json={"reason": "customer request R-1"},
                                 headers={"Idempotency-Key": str(uuid.uuid4())})
        assert merged.status_code == 200 and erased.status_code == 200, (merged.text, erased.text)
    before = {c: await _profile(service, c) for c in everyone}
    assert before[mei]["external_ids"] == {"erp": "E-1001-77", "wechat": "oX5f-abc123"}
    assert before[mei]["address"] == "1 Nanjing Rd" and before[li]["name"] == "李伟"

    engine = create_async_engine(database.url)
    try:
        # While the service runs: refused, nothing changed.
        with pytest.raises(RotationRefused, match="still connected"):
            await rotate_pii_key(units(engine), OLD_KEY, NEW_KEY, service_grace_s=0)
        service.stop()
        original = await _raw(database)
        with pytest.raises(PiiKeyMismatch, match="opens none"):  # no rotation yet: the values themselves tell
            await check_service_key(database.url, PiiVault(WRONG_KEY))
        await check_service_key(database.url, PiiVault(OLD_KEY))
        # Mei: e-mail, phone, name, address, 2 external ids; Wei, Li, Keep: e-mail, phone, name;
        # Dup (merged into Keep) and Gone (erased): none.
        assert _under(PiiVault(OLD_KEY), original) == (15, 15)
        # What the service wrote is exactly what the rotation recomputes (same normalisation).
        checked = await check_pii_keys(units(engine), OLD_KEY, NEW_KEY)
        assert checked.indexes_inconsistent == 0 and checked.unreadable == 0 and checked.under_new_key == 0

        # A wrong old key: refused before anything is written (the journal included).
        with pytest.raises(RotationRefused, match="neither key"):
            await rotate_pii_key(units(engine), WRONG_KEY, NEW_KEY)
        keys = {name: tmp_path / f"{name}.key" for name in ("old", "new", "wrong")}
        for name, key in (("old", OLD_KEY), ("new", NEW_KEY), ("wrong", WRONG_KEY)):
            keys[name].write_text(base64.b64encode(key).decode() + "\n")
        env = {**os.environ, "DATABASE_URL": database.url, "LOG_LEVEL": "INFO"}
        wrong = subprocess.run([str(COMMAND), "--old-key-file", str(keys["wrong"]), "--new-key-file",
                                str(keys["new"])], env=env, capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 2 and "neither key" in wrong.stderr, wrong.stderr
        assert await _raw(database) == original

        # Interrupted after one batch of two customers (a crash: the journal stays unfinished).
        first = await rotate_pii_key(units(engine), OLD_KEY, NEW_KEY, batch_size=2, stop_after_batches=1)
        assert not first.complete and first.batches == 1 and first.customers == 2
        assert first.ciphertexts_resealed == 9  # Mei's and Wei's
        halfway = await _raw(database)
        total = 15
        assert _under(PiiVault(NEW_KEY), halfway) == (9, total) and _under(PiiVault(OLD_KEY), halfway)[0] == 6
        with pytest.raises(RuntimeError, match="exited"):  # neither key may serve a half-rotated database
            start_service("profile", database, PII_KEY=base64.b64encode(NEW_KEY).decode())
        assert "has not finished" in _last_log(tmp_path)

        # Resumed by the operator's command: finishes, checks, journals.
        resumed = subprocess.run([str(COMMAND), "--old-key-file", str(keys["old"]), "--new-key-file",
                                  str(keys["new"]), "--batch-size", "2"],
                                 env=env, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr + resumed.stdout
        report = json.loads(resumed.stdout.strip().splitlines()[-1])
        assert report["complete"] and report["customers"] == 6 and report["preflight"]["indexes_inconsistent"] == 0
        assert report["verification"]["under_new_key"] == total and report["verification"]["under_old_key"] == 0
        assert first.ciphertexts_resealed + report["ciphertexts_resealed"] == total
        output = resumed.stdout + resumed.stderr + wrong.stdout + wrong.stderr
        for secret in (TEST_PII_KEY, base64.b64encode(NEW_KEY).decode(), "mei.chen", "Chenxiang", "E-1001-77",
                       "Nanjing", "13800138000", "李伟"):
            assert secret.lower() not in output.lower(), secret

        # Nothing opens with the old key any more; every index is the new key's.
        rotated = await _raw(database)
        assert _under(PiiVault(NEW_KEY), rotated) == (total, total) and _under(PiiVault(OLD_KEY), rotated)[0] == 0
        old_indexes = {r[k] for r in original["customers"] for k in ("email_bidx", "phone_bidx") if r[k]}
        old_indexes |= {p for _, p in original["names"]} | {r["value_bidx"] for r in original["external"]}
        new_indexes = {r[k] for r in rotated["customers"] for k in ("email_bidx", "phone_bidx") if r[k]}
        new_indexes |= {p for _, p in rotated["names"]} | {r["value_bidx"] for r in rotated["external"]}
        assert not old_indexes & new_indexes and len(rotated["names"]) == len(original["names"])
        journal = await database.fetch("SELECT old_key_id, new_key_id, finished_at FROM pii_key_rotations ORDER BY id")
        assert [(j["old_key_id"], j["new_key_id"]) for j in journal] == [(PiiVault(OLD_KEY).key_id,
                                                                          PiiVault(NEW_KEY).key_id)] * 2
        assert journal[0]["finished_at"] is None and journal[1]["finished_at"] is not None

        # Running it again is harmless.
        again = await rotate_pii_key(units(engine), OLD_KEY, NEW_KEY)
        assert again.complete and again.customers_rewritten == 0
        assert (await _raw(database))["customers"] == rotated["customers"]
    finally:
        await engine.dispose()

    # The old key can no longer start the service; the new one serves everything as before.
    with pytest.raises(RuntimeError, match="exited"):
        start_service("profile", database)
    assert "still the old key" in _last_log(tmp_path)
    service = start_service("profile", database, PII_KEY=base64.b64encode(NEW_KEY).decode())
    assert {c: await _profile(service, c) for c in everyone} == before
    assert await _found(service, email=" MEI.CHEN@example.com ") == [mei]
    assert sorted(await _found(service, phone="138 0013 8000")) == sorted([mei, wei, li, keep])
    assert await _found(service, name="chenx") == [mei] and await _found(service, name="李") == [li]
    assert await _found(service, name="twin") == [keep] and await _found(service, name="gone") == []
    assert await _found(service, external_id="erp:E-1001-77") == [mei]
    assert await _found(service, external_id="wechat:oX5f-abc123") == [mei]
    async with service.client() as http:
        duplicates = (await http.get(f"/v1/profiles/{mei}/duplicates")).json()
    assert {d["customer_id"]: d["shared"] for d in duplicates} == {wei: ["phone"], li: ["phone"], keep: ["phone"]}
    # New data is written under the new key and found the same way.
    late = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(late, email="late@example.com", name="Late Comer")])
    await wait_until(lambda: _profile(service, late), what="a customer registered after the rotation")
    assert await _found(service, email="late@example.com") == [late] and await _found(service, name="late c") == [late]
