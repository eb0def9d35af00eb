"""Rotating PII_KEY: every PII ciphertext re-encrypted and every blind index rebuilt under a new key.

Offline, by design (docs/pii-key-rotation.md): a blind index is computed under one key, so while
the data is half under each key, lookups by e-mail, phone, name prefix or external id, duplicate
detection and merges would miss customers, unless every index were kept, written and queried
twice. The operator stops the profile service, runs ``crm-profile-rotate-pii-key`` with the old
and the new key, sets PII_KEY to the new key and starts the service again.

What PII_KEY protects (migrations 0003 and 0009; repository.py writes it all):

- ``customers``: ``email_enc`` + ``email_bidx``, ``phone_enc`` + ``phone_bidx``, ``name_enc``,
  ``address_enc``;
- ``customer_name_index``: one ``prefix_bidx`` per prefix of the name in ``name_enc``;
- ``customer_external_ids``: ``value_enc`` + ``value_bidx``, under the field ``external:<kind>``.

A batch is a range of customers with their name-index and external-id rows, rewritten in one
transaction, so each customer is wholly under one key. A ciphertext is opened with the old key or
else the new one; a read-only pass over everything comes first and refuses, before anything is
written, when any value opens with neither (a wrong old key). The service normalised each value
before sealing and indexing it (domain/identity.py), so the indexes are recomputed from the
decrypted values with the functions repository.py writes them with. Running again is harmless:
customers already under the new key are skipped, so an interrupted run is finished by running it
again with the same keys (or undone by running it with the keys swapped). A last read-only pass
checks that everything opens with the new key; only then is the run journaled as finished
(``pii_key_rotations``), and the service refuses to start with any other key, while a run is
unfinished, or with a key that opens none of a few stored values (:func:`check_service_key`).

Neither keys nor PII values are ever logged: key ids (derived, one-way), customer ids and counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import stamina
from crm_shared.db import is_transient
from crm_shared.logging import configure_logging, get_logger
from cryptography.exceptions import InvalidTag
from sqlalchemy import NullPool, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from crm_profile.domain.pii import PiiVault
from crm_profile.repository import external_field, name_index_keys
from crm_profile.settings import decode_pii_key

log = get_logger(__name__)

BATCH_SIZE = 500
FIELDS = ("email", "phone", "name", "address")  # customers.<field>_enc
INDEXED = ("email", "phone")                     # customers.<field>_bidx
SERVICE_APPLICATION = "crm-profile"              # the service's application_name (crm_shared.db)
TOOL_APPLICATION = "crm-profile-rotate-pii-key"
_LOCK = 0x7069692D6B6579  # pg advisory lock: one rotation at a time per database


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


# ---- pure: what one customer's rows become under the new key

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


# ---- I/O

# One statement per batch, a row per customer: its name index and external ids as arrays.
_CUSTOMERS = """
    SELECT c.customer_id, c.email_enc, c.email_bidx, c.phone_enc, c.phone_bidx, c.name_enc, c.address_enc,
           ARRAY(SELECT n.prefix_bidx FROM customer_name_index n WHERE n.customer_id = c.customer_id) AS names,
           ARRAY(SELECT e.kind FROM customer_external_ids e WHERE e.customer_id = c.customer_id
                 ORDER BY e.kind) AS kinds,
           ARRAY(SELECT e.value_enc FROM customer_external_ids e WHERE e.customer_id = c.customer_id
                 ORDER BY e.kind) AS value_encs,
           ARRAY(SELECT e.value_bidx FROM customer_external_ids e WHERE e.customer_id = c.customer_id
                 ORDER BY e.kind) AS value_bidxs
    FROM customers c WHERE c.customer_id > :after ORDER BY c.customer_id LIMIT :limit"""
_READ_CUSTOMERS = text(_CUSTOMERS)
_LOCK_CUSTOMERS = text(_CUSTOMERS + " FOR UPDATE OF c")

_UPDATE_CUSTOMERS = text("""
    UPDATE customers c SET email_enc = u.email_enc, email_bidx = u.email_bidx, phone_enc = u.phone_enc,
                           phone_bidx = u.phone_bidx, name_enc = u.name_enc, address_enc = u.address_enc
    FROM unnest(CAST(:ids AS text[]), CAST(:email_encs AS bytea[]), CAST(:email_bidxs AS bytea[]),
                CAST(:phone_encs AS bytea[]), CAST(:phone_bidxs AS bytea[]), CAST(:name_encs AS bytea[]),
                CAST(:address_encs AS bytea[]))
         AS u (customer_id, email_enc, email_bidx, phone_enc, phone_bidx, name_enc, address_enc)
    WHERE c.customer_id = u.customer_id
""")
_CLEAR_NAME_INDEX = text("DELETE FROM customer_name_index WHERE customer_id = ANY(CAST(:ids AS text[]))")
_INDEX_NAMES = text("""
    INSERT INTO customer_name_index (prefix_bidx, customer_id)
    SELECT * FROM unnest(CAST(:prefixes AS bytea[]), CAST(:customer_ids AS text[])) ON CONFLICT DO NOTHING
""")
_UPDATE_EXTERNAL_IDS = text("""
    UPDATE customer_external_ids e SET value_enc = u.value_enc, value_bidx = u.value_bidx
    FROM unnest(CAST(:ids AS text[]), CAST(:kinds AS text[]), CAST(:encs AS bytea[]), CAST(:bidxs AS bytea[]))
         AS u (customer_id, kind, value_enc, value_bidx)
    WHERE e.customer_id = u.customer_id AND e.kind = u.kind
""")

_SERVICE_SESSIONS = text("""
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = :name AND pid <> pg_backend_pid()
""")
_JOURNAL_EXISTS = text("SELECT to_regclass('pii_key_rotations') IS NOT NULL")
_LATEST_ROTATION = text("SELECT old_key_id, new_key_id, started_at, finished_at FROM pii_key_rotations "
                        "ORDER BY id DESC LIMIT 1")
_CUSTOMERS_EXIST = text("SELECT to_regclass('customers') IS NOT NULL")
_SAMPLE = text("SELECT email_enc, phone_enc, name_enc, address_enc FROM customers "
               "WHERE num_nonnulls(email_enc, phone_enc, name_enc, address_enc) > 0 LIMIT 5")
_START = text("INSERT INTO pii_key_rotations (old_key_id, new_key_id) VALUES (:old, :new) RETURNING id")
_RECORD = text("UPDATE pii_key_rotations SET report = CAST(:report AS jsonb), "
               "finished_at = CASE WHEN :complete THEN now() END WHERE id = :id")


async def _read_batch(db: AsyncConnection, after: str, limit: int, *, lock: bool) -> list[StoredCustomer]:
    rows = await db.execute(_LOCK_CUSTOMERS if lock else _READ_CUSTOMERS, {"after": after, "limit": limit})
    return [StoredCustomer(
        customer_id=row.customer_id,
        sealed={name: _bytes(getattr(row, f"{name}_enc")) for name in FIELDS},
        bidx={name: _bytes(getattr(row, f"{name}_bidx")) for name in INDEXED},
        name_index=frozenset(bytes(key) for key in row.names),
        external={kind: (bytes(enc), bytes(bidx))
                  for kind, enc, bidx in zip(row.kinds, row.value_encs, row.value_bidxs, strict=True)},
    ) for row in rows]


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


async def _write_batch(db: AsyncConnection, rewrites: list[Rewrite]) -> int:
    """Store the rewrites; returns the number of name-index rows written."""
    if not rewrites:
        return 0
    await db.execute(_UPDATE_CUSTOMERS, {
        "ids": [r.customer_id for r in rewrites],
        **{f"{name}_encs": [r.sealed[name] for r in rewrites] for name in FIELDS},
        **{f"{name}_bidxs": [r.bidx[name] for r in rewrites] for name in INDEXED},
    })
    renamed = [r for r in rewrites if r.name_index is not None]
    pairs = [(key, r.customer_id) for r in renamed for key in sorted(r.name_index or ())]
    if renamed:
        await db.execute(_CLEAR_NAME_INDEX, {"ids": [r.customer_id for r in renamed]})
    if pairs:
        await db.execute(_INDEX_NAMES, {"prefixes": [p for p, _ in pairs], "customer_ids": [c for _, c in pairs]})
    external = [(r.customer_id, kind, enc, bidx) for r in rewrites for kind, (enc, bidx) in r.external.items()]
    if external:
        columns = list(zip(*external, strict=True))
        await db.execute(_UPDATE_EXTERNAL_IDS, {"ids": list(columns[0]), "kinds": list(columns[1]),
                                                "encs": list(columns[2]), "bidxs": list(columns[3])})
    return len(pairs)


async def scan(engine: AsyncEngine, old: PiiVault, new: PiiVault, batch_size: int = BATCH_SIZE) -> ScanReport:
    """A read-only pass: under which key every value is, and what a rotation would rewrite."""
    report = ScanReport()
    after = ""
    while True:
        async with engine.connect() as db:
            batch = await _read_batch(db, after, batch_size, lock=False)
        if not batch:
            return report
        after = batch[-1].customer_id
        for stored in batch:
            report.customers += 1
            try:
                rewrite = plan_rewrite(stored, old, new, check_only=True)
            except Unreadable as unreadable:
                report.unreadable += 1
                if len(report.unreadable_examples) < 5:
                    report.unreadable_examples.append(unreadable.where)
                continue
            report.ciphertexts += rewrite.ciphertexts
            report.under_old_key += rewrite.under_old_key
            report.under_new_key += rewrite.ciphertexts - rewrite.under_old_key
            report.customers_to_rewrite += rewrite.changes
            report.indexes_inconsistent += rewrite.inconsistent


async def check_pii_keys(engine: AsyncEngine, old_key: bytes, new_key: bytes,
                         batch_size: int = BATCH_SIZE) -> ScanReport:
    """Whether every value opens with one of the two keys (``--check``: reads only, service may run)."""
    return await scan(engine, PiiVault(old_key), PiiVault(new_key), batch_size)


async def rotate_pii_key(engine: AsyncEngine, old_key: bytes, new_key: bytes, batch_size: int = BATCH_SIZE, *,
                         stop_after_batches: int | None = None, service_grace_s: float = 5.0) -> RotationReport:
    """Re-encrypt every PII value and rebuild every blind index under ``new_key``, in batches.

    Refuses (:class:`RotationRefused`, nothing changed) while the profile service is connected to
    the database, while another rotation runs, or when any value opens with neither key.
    ``stop_after_batches`` stops early (as a crash would: the journal stays unfinished), for tests.
    Raises :class:`RotationIncomplete` when the last check finds a value not under the new key.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    old, new = PiiVault(old_key), PiiVault(new_key)
    if old.key_id == new.key_id:
        raise RotationRefused("the new key is the old key")
    report = RotationReport(old_key_id=old.key_id, new_key_id=new.key_id)
    started = time.perf_counter()
    # The guard connection holds a session-level advisory lock for the whole run (a crash
    # releases it) and commits after every statement, so it never idles in a transaction.
    async with engine.connect() as guard:
        locked = await guard.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK})
        await guard.commit()
        if not locked:
            raise RotationRefused("another PII key rotation is running on this database")
        try:
            await _refuse_unless_offline(guard, service_grace_s)
            log.info("pii key rotation: checking that every value opens with one of the keys",
                     old_key_id=old.key_id, new_key_id=new.key_id)
            report.preflight = await scan(engine, old, new, batch_size)
            report.preflight_seconds = round(time.perf_counter() - started, 3)
            if report.preflight.unreadable:
                raise RotationRefused(
                    f"{report.preflight.unreadable} customers hold values that open with neither key (e.g. "
                    f"{', '.join(report.preflight.unreadable_examples)}): is the old key right? Nothing was changed")
            journal = await guard.scalar(_START, {"old": old.key_id, "new": new.key_id})
            await guard.commit()
            log.info("pii key rotation started", journal_id=journal, customers=report.preflight.customers,
                     to_rewrite=report.preflight.customers_to_rewrite)
            rewriting = time.perf_counter()
            await _rewrite_all(engine, old, new, batch_size, report, stop_after_batches, started)
            report.rewrite_seconds = round(time.perf_counter() - rewriting, 3)
            if stop_after_batches is None or report.batches < stop_after_batches:
                verifying = time.perf_counter()
                report.verification = await scan(engine, old, new, batch_size)
                report.verify_seconds = round(time.perf_counter() - verifying, 3)
                report.complete = not (report.verification.customers_to_rewrite or report.verification.unreadable)
            report.seconds = round(time.perf_counter() - started, 3)
            report.customers_per_s = round(report.customers / report.seconds, 1) if report.seconds else 0.0
            await guard.execute(_RECORD, {"id": journal, "report": json.dumps(report.as_dict()),
                                          "complete": report.complete})
            await guard.commit()
        finally:
            await guard.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK})
            await guard.commit()
    if report.complete:
        log.info("pii key rotation finished", **_summary(report))
    elif report.verification is not None:
        log.error("pii key rotation: values are still not under the new key; run it again", **_summary(report))
        raise RotationIncomplete(f"{report.verification.customers_to_rewrite} customers are not wholly under "
                                 "the new key (was the profile service running?): run the rotation again")
    else:
        log.warning("pii key rotation stopped early; run it again to finish", **_summary(report))
    return report


async def _refuse_unless_offline(db: AsyncConnection, grace_s: float) -> None:
    journal = await db.scalar(_JOURNAL_EXISTS)
    await db.commit()
    if not journal:
        raise RotationRefused("the database lacks pii_key_rotations: run `crm migrate profile` first")
    deadline = time.monotonic() + grace_s
    while True:
        sessions = await db.scalar(_SERVICE_SESSIONS, {"name": SERVICE_APPLICATION})
        await db.commit()  # pg_stat_activity is a snapshot per transaction
        if not sessions:
            return
        if time.monotonic() >= deadline:
            raise RotationRefused(f"the profile service is still connected to the database ({sessions} sessions "
                                  f"named {SERVICE_APPLICATION}): scale it to 0 first. Nothing was changed")
        await asyncio.sleep(0.25)


async def _rewrite_all(engine: AsyncEngine, old: PiiVault, new: PiiVault, batch_size: int, report: RotationReport,
                       stop_after_batches: int | None, started: float) -> None:
    after = ""
    logged = time.monotonic()
    while stop_after_batches is None or report.batches < stop_after_batches:
        async with engine.connect() as tx:
            batch = await _read_batch(tx, after, batch_size, lock=True)
            if not batch:
                return
            try:
                rewrites = [r for r in (plan_rewrite(stored, old, new) for stored in batch) if r.changes]
            except Unreadable as unreadable:
                raise RotationIncomplete(f"{unreadable.where} opens with neither key (written since the check?): "
                                         "nothing of its batch was changed; stop the service and run again") from None
            report.name_index_rows += await _write_batch(tx, rewrites)
            await tx.commit()
        after = batch[-1].customer_id
        report.batches += 1
        report.customers += len(batch)
        report.customers_rewritten += len(rewrites)
        report.ciphertexts_resealed += sum(r.under_old_key for r in rewrites)
        report.blind_indexes_rewritten += sum(r.bidx_rewritten for r in rewrites)
        if time.monotonic() - logged >= 5:
            logged = time.monotonic()
            log.info("pii key rotation progress", customers=report.customers, rewritten=report.customers_rewritten,
                     customers_per_s=round(report.customers / (time.perf_counter() - started)))


def _summary(report: RotationReport) -> dict[str, Any]:
    return {k: v for k, v in report.as_dict().items() if k not in ("preflight", "verification")}


# ---- the service's side: refuse to start under the wrong key

async def check_service_key(database_url: str, vault: PiiVault, *, timeout_s: float = 60.0) -> None:
    """Raise :class:`PiiKeyMismatch` when the service must not start with ``vault``'s key.

    Called before the service consumes or serves anything: a value sealed under a key the rest
    of the data is not under would be unreadable later. Refused: a rotation is unfinished; the
    last rotation moved the data to another key; or, whatever the journal says, none of a few
    stored values opens with the key (a wrong secret, a backup from before a rotation). Waits for
    the database like the runtime waits for the broker.
    """
    engine = create_async_engine(database_url, poolclass=NullPool,
                                 connect_args={"server_settings": {"application_name": SERVICE_APPLICATION}})
    latest, sample = None, []
    try:
        async for attempt in stamina.retry_context(on=is_transient, attempts=None, timeout=timeout_s,
                                                    wait_initial=0.2, wait_max=3.0):
            with attempt:
                async with engine.connect() as db:
                    if await db.scalar(_JOURNAL_EXISTS):
                        latest = (await db.execute(_LATEST_ROTATION)).first()
                    if await db.scalar(_CUSTOMERS_EXIST):
                        sample = [(name, bytes(sealed)) for row in await db.execute(_SAMPLE)
                                  for name, sealed in zip(FIELDS, row, strict=True) if sealed is not None]
    finally:
        await engine.dispose()
    problem = key_problem(latest, vault.key_id) or sample_problem(sample, vault)
    if problem is not None:
        log.error("refusing to start: PII_KEY does not match the data", detail=problem)
        raise PiiKeyMismatch(problem)


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


# ---- the operator's command

def main(argv: list[str] | None = None) -> int:
    """``crm-profile-rotate-pii-key --old-key-file F --new-key-file G`` (DATABASE_URL from the environment)."""
    parser = argparse.ArgumentParser(
        prog=TOOL_APPLICATION,
        description="Re-encrypt the profile service's PII and rebuild its blind indexes under a new PII_KEY. "
                    "Stop the profile service first (scale it to 0); take a backup. DATABASE_URL names the "
                    "profile database. Prints one JSON line with the report. See docs/pii-key-rotation.md.")
    parser.add_argument("--old-key-file", type=Path, required=True, help="file holding the current PII_KEY (base64)")
    parser.add_argument("--new-key-file", type=Path, required=True, help="file holding the new PII_KEY (base64)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="customers per transaction")
    parser.add_argument("--check", action="store_true",
                        help="only check that every value opens with one of the keys; change nothing")
    args = parser.parse_args(argv)
    configure_logging("profile", os.environ.get("LOG_LEVEL", "INFO"),
                      os.environ.get("LOG_JSON", "true").lower() not in ("0", "false", "no"))
    try:
        old_key, new_key = _read_key(args.old_key_file, "old"), _read_key(args.new_key_file, "new")
        url = os.environ.get("DATABASE_URL")
        if not url:
            raise RotationRefused("set DATABASE_URL to the profile database")
    except RotationRefused as refused:
        print(json.dumps({"error": "refused", "detail": str(refused)}), file=sys.stderr)
        return 2
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+asyncpg://" + url[len(prefix):]
    try:
        result = asyncio.run(_run(url, old_key, new_key, args.batch_size, args.check))
    except RotationRefused as refused:
        print(json.dumps({"error": "refused", "detail": str(refused)}), file=sys.stderr)
        return 2
    except RotationIncomplete as incomplete:
        print(json.dumps({"error": "incomplete", "detail": str(incomplete)}), file=sys.stderr)
        return 1
    print(json.dumps(asdict(result)))
    if isinstance(result, ScanReport):
        return 2 if result.unreadable else 0
    return 0 if result.complete else 1


async def _run(url: str, old_key: bytes, new_key: bytes, batch_size: int, check: bool) -> RotationReport | ScanReport:
    engine = create_async_engine(url, connect_args={"server_settings": {"application_name": TOOL_APPLICATION}})
    try:
        if check:
            return await check_pii_keys(engine, old_key, new_key, batch_size)
        return await rotate_pii_key(engine, old_key, new_key, batch_size)
    finally:
        await engine.dispose()


def _read_key(path: Path, which: str) -> bytes:
    try:
        return decode_pii_key(path.read_text().strip())
    except OSError as error:
        raise RotationRefused(f"cannot read the {which} key file {str(path)!r}: {error.strerror}") from None
    except ValueError as error:  # the message names the rule, never the content
        raise RotationRefused(f"the {which} key file {str(path)!r}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
