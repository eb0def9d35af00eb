"""Rotating PII_KEY, the use cases: the read-only scan, the rotation itself, the service's key check.

A rotation works in many transactions, so it takes a callable opening units of work on a
:class:`~crm_profile.repository.pii_rotation.PiiRotationRepository` (``lambda:
unit_of_work(engine, PiiRotationRepository)``) and commits each one itself: the guard unit holds a
session-level advisory lock for the whole run and commits after every statement (it never idles
in a transaction); each batch of customers is read, planned (``domain.pii_rotation``) and
rewritten in one unit of its own. The procedure and its guarantees: ``crm_profile.pii_rotation``
and docs/pii-key-rotation.md.

Neither keys nor PII values are ever logged: key ids (derived, one-way), customer ids and counts.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import stamina
from crm_shared.db import is_transient
from crm_shared.logging import get_logger

from crm_profile.domain.pii import PiiVault
from crm_profile.domain.pii_rotation import (
    BATCH_SIZE,
    SERVICE_APPLICATION,
    PiiKeyMismatch,
    RotationIncomplete,
    RotationRefused,
    RotationReport,
    ScanReport,
    Unreadable,
    key_problem,
    plan_rewrite,
    sample_problem,
)

if TYPE_CHECKING:
    from crm_shared.uow import UnitOfWork

    from crm_profile.repository.pii_rotation import PiiRotationRepository

    OpenUnit = Callable[[], AbstractAsyncContextManager[UnitOfWork[PiiRotationRepository]]]

log = get_logger(__name__)


async def scan(open_uow: OpenUnit, old: PiiVault, new: PiiVault, batch_size: int = BATCH_SIZE) -> ScanReport:
    """A read-only pass: under which key every value is, and what a rotation would rewrite."""
    report = ScanReport()
    after = ""
    while True:
        async with open_uow() as uow:
            batch = await uow.repo.read_batch(after, batch_size, lock=False)
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


async def check_pii_keys(open_uow: OpenUnit, old_key: bytes, new_key: bytes,
                         batch_size: int = BATCH_SIZE) -> ScanReport:
    """Whether every value opens with one of the two keys (``--check``: reads only, service may run)."""
    return await scan(open_uow, PiiVault(old_key), PiiVault(new_key), batch_size)


async def rotate_pii_key(open_uow: OpenUnit, old_key: bytes, new_key: bytes, batch_size: int = BATCH_SIZE, *,
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
    # The guard unit holds a session-level advisory lock for the whole run (a crash releases it)
    # and commits after every statement, so it never idles in a transaction.
    async with open_uow() as guard:
        locked = await guard.repo.try_lock_rotation()
        await guard.commit()
        if not locked:
            raise RotationRefused("another PII key rotation is running on this database")
        try:
            await _refuse_unless_offline(guard, service_grace_s)
            log.info("pii key rotation: checking that every value opens with one of the keys",
                     old_key_id=old.key_id, new_key_id=new.key_id)
            report.preflight = await scan(open_uow, old, new, batch_size)
            report.preflight_seconds = round(time.perf_counter() - started, 3)
            if report.preflight.unreadable:
                raise RotationRefused(
                    f"{report.preflight.unreadable} customers hold values that open with neither key (e.g. "
                    f"{', '.join(report.preflight.unreadable_examples)}): is the old key right? Nothing was changed")
            journal = await guard.repo.start_journal(old.key_id, new.key_id)
            await guard.commit()
            log.info("pii key rotation started", journal_id=journal, customers=report.preflight.customers,
                     to_rewrite=report.preflight.customers_to_rewrite)
            rewriting = time.perf_counter()
            await _rewrite_all(open_uow, old, new, batch_size, report, stop_after_batches, started)
            report.rewrite_seconds = round(time.perf_counter() - rewriting, 3)
            if stop_after_batches is None or report.batches < stop_after_batches:
                verifying = time.perf_counter()
                report.verification = await scan(open_uow, old, new, batch_size)
                report.verify_seconds = round(time.perf_counter() - verifying, 3)
                report.complete = not (report.verification.customers_to_rewrite or report.verification.unreadable)
            report.seconds = round(time.perf_counter() - started, 3)
            report.customers_per_s = round(report.customers / report.seconds, 1) if report.seconds else 0.0
            await guard.repo.record_journal(journal, json.dumps(report.as_dict()), complete=report.complete)
            await guard.commit()
        finally:
            await guard.repo.unlock_rotation()
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


async def _refuse_unless_offline(guard: UnitOfWork[PiiRotationRepository], grace_s: float) -> None:
    journal = await guard.repo.journal_exists()
    await guard.commit()
    if not journal:
        raise RotationRefused("the database lacks pii_key_rotations: run `crm migrate profile` first")
    deadline = time.monotonic() + grace_s
    while True:
        sessions = await guard.repo.sessions_of(SERVICE_APPLICATION)
        await guard.commit()  # pg_stat_activity is a snapshot per transaction
        if not sessions:
            return
        if time.monotonic() >= deadline:
            raise RotationRefused(f"the profile service is still connected to the database ({sessions} sessions "
                                  f"named {SERVICE_APPLICATION}): scale it to 0 first. Nothing was changed")
        await asyncio.sleep(0.25)


async def _rewrite_all(open_uow: OpenUnit, old: PiiVault, new: PiiVault, batch_size: int, report: RotationReport,
                       stop_after_batches: int | None, started: float) -> None:
    after = ""
    logged = time.monotonic()
    while stop_after_batches is None or report.batches < stop_after_batches:
        async with open_uow() as uow:
            batch = await uow.repo.read_batch(after, batch_size, lock=True)
            if not batch:
                return
            try:
                rewrites = [r for r in (plan_rewrite(stored, old, new) for stored in batch) if r.changes]
            except Unreadable as unreadable:
                raise RotationIncomplete(f"{unreadable.where} opens with neither key (written since the check?): "
                                         "nothing of its batch was changed; stop the service and run again") from None
            report.name_index_rows += await uow.repo.write_batch(rewrites)
            await uow.commit()
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

async def service_key_problem(uow: UnitOfWork[PiiRotationRepository], vault: PiiVault) -> str | None:
    """Why the service must not start with ``vault``'s key, or None: a rotation is unfinished; the
    last rotation moved the data to another key; or, whatever the journal says, none of a few
    stored values opens with the key (a wrong secret, a backup from before a rotation)."""
    latest = await uow.repo.latest_rotation()
    sample = await uow.repo.key_sample()
    return key_problem(latest, vault.key_id) or sample_problem(sample, vault)


async def check_service_key(open_uow: OpenUnit, vault: PiiVault, *, timeout_s: float = 60.0) -> None:
    """Raise :class:`PiiKeyMismatch` when the service must not start with ``vault``'s key
    (:func:`service_key_problem`).

    Called before the service consumes or serves anything: a value sealed under a key the rest
    of the data is not under would be unreadable later. Waits for the database like the runtime
    waits for the broker (``crm_profile.pii_rotation.check_service_key`` opens the connection
    under the service's name).
    """
    problem = None
    async for attempt in stamina.retry_context(on=is_transient, attempts=None, timeout=timeout_s,
                                                wait_initial=0.2, wait_max=3.0):
        with attempt:
            async with open_uow() as uow:
                problem = await service_key_problem(uow, vault)
    if problem is not None:
        log.error("refusing to start: PII_KEY does not match the data", detail=problem)
        raise PiiKeyMismatch(problem)
