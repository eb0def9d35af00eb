"""Rotating PII_KEY, the pure planning (crm_profile/domain/pii_rotation.py): what one customer's rows
become under the new key, why the service refuses a key, and the command refusing bad key files."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from crm_profile import pii_rotation
from crm_profile.domain.pii import PiiVault
from crm_profile.domain.pii_rotation import StoredCustomer, Unreadable, key_problem, plan_rewrite, sample_problem
from crm_profile.pii_rotation import main
from crm_profile.repository import external_field, name_index_keys
from cryptography.exceptions import InvalidTag

from tests.harness.infra import TEST_PII_KEY

OLD_KEY = base64.b64decode(TEST_PII_KEY)
NEW_KEY = b"n" * 16 + os.urandom(16)
WRONG_KEY = b"w" * 32


def _stored(vault: PiiVault, customer_id: str = "c-1", *, email: str | None = "mei@example.com",
            phone: str | None = "+8613800138000", name: str | None = "Mei Chen", address: str | None = "1 Rd",
            external: dict[str, str] | None = None) -> StoredCustomer:
    """A customer's rows as the service writes them (repository.py) under ``vault``."""
    values = {"email": email, "phone": phone, "name": name, "address": address}
    return StoredCustomer(
        customer_id=customer_id, sealed={k: vault.seal(k, v) for k, v in values.items()},
        bidx={k: vault.index(k, values[k]) for k in ("email", "phone")},
        name_index=frozenset(name_index_keys(vault, name)),
        external={kind: (vault.seal(external_field(kind), value), vault.index(external_field(kind), value))
                  for kind, value in (external or {}).items()})


def _applied(stored: StoredCustomer, rewrite) -> StoredCustomer:
    return StoredCustomer(stored.customer_id, rewrite.sealed, rewrite.bidx,
                          stored.name_index if rewrite.name_index is None else rewrite.name_index,
                          {**stored.external, **rewrite.external})


def test_a_key_id_names_a_key_without_revealing_it():
    assert PiiVault(OLD_KEY).key_id == PiiVault(OLD_KEY).key_id != PiiVault(NEW_KEY).key_id
    key_id = PiiVault(OLD_KEY).key_id
    assert len(key_id) == 16 and int(key_id, 16) >= 0
    assert key_id not in OLD_KEY.hex() and key_id not in TEST_PII_KEY


def test_a_customer_under_the_old_key_is_rewritten_wholly_under_the_new_one():
    old, new = PiiVault(OLD_KEY), PiiVault(NEW_KEY)
    stored = _stored(old, external={"erp": "E-1001", "wechat": "oX5f"})
    checked = plan_rewrite(stored, old, new, check_only=True)
    assert checked.changes and checked.under_old_key == 6 and checked.inconsistent == 0
    assert checked.sealed == stored.sealed  # a check seals nothing
    rewrite = plan_rewrite(stored, old, new)
    assert rewrite.changes and rewrite.ciphertexts == 6 and rewrite.under_old_key == 6
    assert {k: new.open(k, v) for k, v in rewrite.sealed.items()} == {
        "email": "mei@example.com", "phone": "+8613800138000", "name": "Mei Chen", "address": "1 Rd"}
    for name, sealed in rewrite.sealed.items():
        with pytest.raises(InvalidTag):
            old.open(name, sealed)
    assert rewrite.bidx == {"email": new.index("email", "mei@example.com"),
                            "phone": new.index("phone", "+8613800138000")}
    assert rewrite.name_index == name_index_keys(new, "Mei Chen") and not rewrite.name_index & stored.name_index
    assert {kind: new.open(external_field(kind), enc) for kind, (enc, _) in rewrite.external.items()} == \
        {"erp": "E-1001", "wechat": "oX5f"}
    assert rewrite.external["erp"][1] == new.index("external:erp", "E-1001")
    # Planned again on its result (a rerun, a resumed run): nothing left to do.
    assert not plan_rewrite(_applied(stored, rewrite), old, new).changes


def test_nulls_stay_null_and_a_customer_already_under_the_new_key_is_left_alone():
    old, new = PiiVault(OLD_KEY), PiiVault(NEW_KEY)
    erased = _stored(old, email=None, phone=None, name=None, address=None)
    assert not plan_rewrite(erased, old, new).changes
    already = _stored(new, external={"erp": "E-1"})
    rewrite = plan_rewrite(already, old, new)
    assert not rewrite.changes and rewrite.ciphertexts == 5 and rewrite.under_old_key == 0


def test_a_value_that_opens_with_neither_key_is_refused_without_saying_what_it_is():
    stored = _stored(PiiVault(WRONG_KEY), "c-42")
    with pytest.raises(Unreadable) as refused:
        plan_rewrite(stored, PiiVault(OLD_KEY), PiiVault(NEW_KEY))
    assert refused.value.where == "c-42/email" and "mei" not in str(refused.value)
    mixed = _stored(PiiVault(OLD_KEY), "c-43", external={"erp": "E-1"})
    mixed.external["erp"] = (PiiVault(WRONG_KEY).seal("external:erp", "E-1"), mixed.external["erp"][1])
    with pytest.raises(Unreadable, match="c-43/external:erp"):
        plan_rewrite(mixed, PiiVault(OLD_KEY), PiiVault(NEW_KEY))


def test_an_index_the_service_would_not_have_written_is_rebuilt_and_counted():
    old, new = PiiVault(OLD_KEY), PiiVault(NEW_KEY)
    stored = _stored(old)
    stored.bidx["email"] = old.index("email", "someone.else@example.com")
    stored.name_index = frozenset(name_index_keys(old, "Someone Else"))
    assert plan_rewrite(stored, old, new, check_only=True).inconsistent == 2
    rewrite = plan_rewrite(stored, old, new)
    assert rewrite.bidx["email"] == new.index("email", "mei@example.com")
    assert rewrite.name_index == name_index_keys(new, "Mei Chen")


def test_the_service_refuses_a_key_the_data_is_not_under_or_an_unfinished_rotation():
    at = datetime(2026, 11, 1, 12, tzinfo=UTC)
    old, new = PiiVault(OLD_KEY).key_id, PiiVault(NEW_KEY).key_id
    assert key_problem(None, old) is None
    finished = SimpleNamespace(old_key_id=old, new_key_id=new, started_at=at, finished_at=at)
    assert key_problem(finished, new) is None
    assert "still the old key" in key_problem(finished, old)
    assert "another key" in key_problem(finished, PiiVault(WRONG_KEY).key_id)
    unfinished = SimpleNamespace(old_key_id=old, new_key_id=new, started_at=at, finished_at=None)
    assert "has not finished" in key_problem(unfinished, new) and "has not finished" in key_problem(unfinished, old)


def test_the_service_refuses_a_key_that_opens_none_of_the_values_it_samples():
    old, wrong = PiiVault(OLD_KEY), PiiVault(WRONG_KEY)
    sample = [("email", old.seal("email", "mei@example.com")), ("name", old.seal("name", "Mei"))]
    assert sample_problem([], wrong) is None and sample_problem(sample, old) is None
    assert sample_problem([("email", b"\x01damaged"), *sample], old) is None  # one damaged value is no reason
    problem = sample_problem(sample, wrong)
    assert "opens none of the 2 stored values" in problem and wrong.key_id in problem and "mei" not in problem


def test_the_command_refuses_unreadable_key_files_without_echoing_them(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setattr(pii_rotation, "configure_logging", lambda *args: None)  # the test process's logging stays
    bad = tmp_path / "bad.key"
    bad.write_text("c2hvcnQ=")  # base64 of 5 bytes
    good = tmp_path / "good.key"
    good.write_text(base64.b64encode(NEW_KEY).decode() + "\n")
    assert main(["--old-key-file", str(bad), "--new-key-file", str(good)]) == 2
    assert main(["--old-key-file", str(tmp_path / "missing"), "--new-key-file", str(good)]) == 2
    err = capsys.readouterr().err
    assert "at least 32 bytes" in err and "cannot read the old key file" in err
    assert "c2hvcnQ=" not in err and base64.b64encode(NEW_KEY).decode() not in err
