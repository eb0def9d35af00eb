"""Rotating PII_KEY, the pure part: what one customer's rows become under the new key, what a
read-only pass found, and why the service must not start with a key.

The whole procedure (offline, in batches, journaled) is described in ``crm_profile.pii_rotation``
and docs/pii-key-rotation.md; its use cases are in ``crm_profile.usecases.pii_rotation`` and its
SQL in ``crm_profile.repository.pii_rotation``. The service normalised each value before sealing
and indexing it (domain/identity.py), so the indexes are recomputed from the decrypted values with
the functions the repository writes them with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag

from crm_profile.domain.changes import external_field, name_index_keys
from crm_profile.domain.pii import PiiVault

BATCH_SIZE = 500
FIELDS = ("email", "phone", "name", "address")  # customers.<field>_enc
INDEXED = ("email", "phone")                     # customers.<field>_bidx
SERVICE_APPLICATION = "crm-profile"              # the service's application_name (crm_shared.db)
TOOL_APPLICATION = "crm-profile-rotate-pii-key"


class RotationRefused(Exception):
    """The rotation did not start and nothing was changed (wrong key, service still running…)."""


class RotationIncomplete(Exception):
    """The rotation stopped or its last check failed; run it again with the same keys."""


class PiiKeyMismatch(RuntimeError):
    """The service's PII_KEY is not the key the data is under, or a rotation is unfinished."""


@dataclass
class ScanReport:
    """What a read-only pass found: under which key each value is."""

    customers: int = 0
    ciphertexts: int = 0
    under_old_key: int = 0
    under_new_key: int = 0
    unreadable: int = 0              # opens with neither key
    customers_to_rewrite: int = 0
    # An index the service would not have written for its value: the rotation rebuilds it from the
    # value. The service never writes one; a non-zero count means rows were edited by hand.
    indexes_inconsistent: int = 0
    unreadable_examples: list[str] = field(default_factory=list)  # "customer_id/field", the first few


@dataclass
class RotationReport:
    old_key_id: str
    new_key_id: str
    complete: bool = False
    customers: int = 0               # scanned by the rewriting pass
    customers_rewritten: int = 0
    ciphertexts_resealed: int = 0
    blind_indexes_rewritten: int = 0  # email_bidx, phone_bidx and external ids' value_bidx
    name_index_rows: int = 0          # written for the customers whose name index changed
    batches: int = 0
    seconds: float = 0.0              # in all: the check before, the rewriting, the check after
    preflight_seconds: float = 0.0
    rewrite_seconds: float = 0.0
    verify_seconds: float = 0.0
    customers_per_s: float = 0.0
    preflight: ScanReport | None = None
    verification: ScanReport | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- what one customer's rows become under the new key

@dataclass
class StoredCustomer:
    """A customer's rows as stored: ciphertexts, blind indexes, name index, external ids."""

    customer_id: str
    sealed: dict[str, bytes | None]                       # FIELDS
    bidx: dict[str, bytes | None]                         # INDEXED
    name_index: frozenset[bytes] = frozenset()
    external: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)  # kind → (value_enc, value_bidx)


@dataclass
class Rewrite:
    """A customer's rows under the new key; ``name_index`` None and absent kinds are unchanged."""

    customer_id: str
    sealed: dict[str, bytes | None]
    bidx: dict[str, bytes | None]
    name_index: frozenset[bytes] | None = None
    external: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    ciphertexts: int = 0
    under_old_key: int = 0
    bidx_rewritten: int = 0
    inconsistent: int = 0

    @property
    def changes(self) -> bool:
        return bool(self.under_old_key or self.bidx_rewritten or self.name_index is not None or self.external)


class Unreadable(Exception):
    def __init__(self, customer_id: str, field_name: str) -> None:
        super().__init__(f"{customer_id}/{field_name}")
        self.where = f"{customer_id}/{field_name}"


def open_with_either(old: PiiVault, new: PiiVault, field_name: str, sealed: bytes) -> tuple[str, PiiVault]:
    """The plaintext and the vault that opened it: the old key's, else the new key's.

    AES-GCM authenticates the key: a ciphertext opens with the key it was sealed with only.
    """
    for vault in (old, new):
        try:
            value = vault.open(field_name, sealed)
        except (InvalidTag, ValueError):  # another key, or not this format (ValueError)
            continue
        assert value is not None
        return value, vault
    raise LookupError(field_name)


def plan_rewrite(stored: StoredCustomer, old: PiiVault, new: PiiVault, *, check_only: bool = False) -> Rewrite:
    """Every ciphertext of the customer under the new key and every index recomputed from its value.

    Raises :class:`Unreadable` when a value opens with neither key. With ``check_only`` nothing is
    sealed (the plan only counts) and ``inconsistent`` counts the indexes that differ from what the
    service writes for the value under the key the value was found under.
    """
    rewrite = Rewrite(stored.customer_id, dict(stored.sealed), dict(stored.bidx))
    plain: dict[str, str | None] = {}
    found_under: dict[str, PiiVault] = {}

    def opened(field_name: str, sealed: bytes) -> tuple[str, PiiVault]:
        try:
            value, vault = open_with_either(old, new, field_name, sealed)
        except LookupError:
            raise Unreadable(stored.customer_id, field_name) from None
        rewrite.ciphertexts += 1
        rewrite.under_old_key += vault is old
        return value, vault

    def reseal(field_name: str, value: str, sealed: bytes, vault: PiiVault) -> bytes:
        return new.seal(field_name, value) if vault is old and not check_only else sealed

    for name in FIELDS:
        sealed = stored.sealed[name]
        plain[name], found_under[name] = None, new
        if sealed is not None:
            plain[name], found_under[name] = opened(name, sealed)
            rewrite.sealed[name] = reseal(name, plain[name], sealed, found_under[name])
    for name in INDEXED:
        expected = new.index(name, plain[name])
        if stored.bidx[name] != expected:
            rewrite.bidx[name] = expected
            rewrite.bidx_rewritten += 1
            if check_only:
                rewrite.inconsistent += stored.bidx[name] != found_under[name].index(name, plain[name])
    names = frozenset(name_index_keys(new, plain["name"]))
    if stored.name_index != names:
        rewrite.name_index = names
        if check_only:
            rewrite.inconsistent += stored.name_index != name_index_keys(found_under["name"], plain["name"])
    for kind, (sealed, bidx) in sorted(stored.external.items()):
        name = external_field(kind)
        value, vault = opened(name, sealed)
        expected = new.index(name, value)
        if vault is old or bidx != expected:
            rewrite.external[kind] = (reseal(name, value, sealed, vault), expected)
            rewrite.bidx_rewritten += bidx != expected
            if check_only:
                rewrite.inconsistent += bidx != vault.index(name, value)
    return rewrite


def key_problem(latest: Any, key_id: str) -> str | None:
    """Why the service must not start with the key ``key_id``, given the last rotation (or None)."""
    if latest is None:
        return None
    if latest.finished_at is None:
        return (f"a PII key rotation from key id {latest.old_key_id} to {latest.new_key_id} (started "
                f"{latest.started_at:%Y-%m-%d %H:%M:%S%z}) has not finished: run crm-profile-rotate-pii-key "
                "again with the same keys to finish it, or with them swapped to undo it, then start the service")
    if latest.new_key_id != key_id:
        which = "still the old key" if latest.old_key_id == key_id else "another key"
        return (f"PII_KEY (key id {key_id}) is {which}: the data was rotated to key id {latest.new_key_id} "
                f"on {latest.finished_at:%Y-%m-%d %H:%M:%S%z}; set PII_KEY to that key")
    return None


def sample_problem(sample: list[tuple[str, bytes]], vault: PiiVault) -> str | None:
    """Why the key must not be used when it opens none of the sampled ciphertexts (one is enough:
    a single damaged value must not keep the service down)."""
    for name, sealed in sample:
        try:
            vault.open(name, sealed)
            return None
        except (InvalidTag, ValueError):
            continue
    if not sample:
        return None
    return (f"PII_KEY (key id {vault.key_id}) opens none of the {len(sample)} stored values sampled: it is not "
            "the key this database was written with (a backup from before a key rotation needs the key of its "
            "time; docs/pii-key-rotation.md)")
