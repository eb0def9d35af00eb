"""Rotating PII_KEY: every PII ciphertext re-encrypted and every blind index rebuilt under a new key.

Offline, by design (docs/pii-key-rotation.md): a blind index is computed under one key, so while
the data is half under each key, lookups by e-mail, phone, name prefix or external id, duplicate
detection and merges would miss customers, unless every index were kept, written and queried
twice. The operator stops the profile service, runs ``crm-profile-rotate-pii-key`` with the old
and the new key, sets PII_KEY to the new key and starts the service again.

What PII_KEY protects (migrations 0003 and 0009; the repository writes it all):

- ``customers``: ``email_enc`` + ``email_bidx``, ``phone_enc`` + ``phone_bidx``, ``name_enc``,
  ``address_enc``;
- ``customer_name_index``: one ``prefix_bidx`` per prefix of the name in ``name_enc``;
- ``customer_external_ids``: ``value_enc`` + ``value_bidx``, under the field ``external:<kind>``.

A batch is a range of customers with their name-index and external-id rows, rewritten in one
transaction, so each customer is wholly under one key. A ciphertext is opened with the old key or
else the new one; a read-only pass over everything comes first and refuses, before anything is
written, when any value opens with neither (a wrong old key). The service normalised each value
before sealing and indexing it (domain/identity.py), so the indexes are recomputed from the
decrypted values with the functions the repository writes them with. Running again is harmless:
customers already under the new key are skipped, so an interrupted run is finished by running it
again with the same keys (or undone by running it with the keys swapped). A last read-only pass
checks that everything opens with the new key; only then is the run journaled as finished
(``pii_key_rotations``), and the service refuses to start with any other key, while a run is
unfinished, or with a key that opens none of a few stored values (:func:`check_service_key`).

Neither keys nor PII values are ever logged: key ids (derived, one-way), customer ids and counts.

This module is the operator's command and the service's entry to the key check; the planning is
``domain/pii_rotation.py``, the SQL ``repository/pii_rotation.py``, the procedure
``usecases/pii_rotation.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict
from pathlib import Path

from crm_shared.logging import configure_logging
from crm_shared.uow import UnitOfWork, unit_of_work
from sqlalchemy import NullPool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from crm_profile.domain.pii import PiiVault
from crm_profile.domain.pii_rotation import (
    BATCH_SIZE,
    SERVICE_APPLICATION,
    TOOL_APPLICATION,
    PiiKeyMismatch,
    RotationIncomplete,
    RotationRefused,
    RotationReport,
    ScanReport,
)
from crm_profile.repository.pii_rotation import PiiRotationRepository
from crm_profile.settings import decode_pii_key
from crm_profile.usecases import pii_rotation as usecases
from crm_profile.usecases.pii_rotation import check_pii_keys, rotate_pii_key

__all__ = ["PiiKeyMismatch", "RotationIncomplete", "RotationRefused", "check_pii_keys", "check_service_key", "main",
           "rotate_pii_key", "units"]


def units(engine: AsyncEngine) -> Callable[[], AbstractAsyncContextManager[UnitOfWork[PiiRotationRepository]]]:
    """What the use cases take: a callable opening a unit of work on ``engine``."""
    return lambda: unit_of_work(engine, PiiRotationRepository)


async def check_service_key(database_url: str, vault: PiiVault, *, timeout_s: float = 60.0) -> None:
    """Raise :class:`PiiKeyMismatch` when the service must not start with ``vault``'s key
    (``usecases.pii_rotation.check_service_key``), on a connection of its own named like the
    service's (a rotation refuses to run while the service is connected, this check included)."""
    engine = create_async_engine(database_url, poolclass=NullPool,
                                 connect_args={"server_settings": {"application_name": SERVICE_APPLICATION}})
    try:
        await usecases.check_service_key(units(engine), vault, timeout_s=timeout_s)
    finally:
        await engine.dispose()


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
            return await check_pii_keys(units(engine), old_key, new_key, batch_size)
        return await rotate_pii_key(units(engine), old_key, new_key, batch_size)
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
