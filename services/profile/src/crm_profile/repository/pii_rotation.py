"""The SQL of the PII key rotation (crm_profile.usecases.pii_rotation): reading and rewriting
batches of customers with their name index and external ids, the offline check, the journal
(``pii_key_rotations``) and the few values the service samples before it starts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.domain.pii_rotation import FIELDS, INDEXED, Rewrite, StoredCustomer

_LOCK = 0x7069692D6B6579  # pg advisory lock: one rotation at a time per database

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
_START_JOURNAL = text("INSERT INTO pii_key_rotations (old_key_id, new_key_id) VALUES (:old, :new) RETURNING id")
_RECORD_JOURNAL = text("UPDATE pii_key_rotations SET report = CAST(:report AS jsonb), "
               "finished_at = CASE WHEN :complete THEN now() END WHERE id = :id")


_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")


class PiiRotationRepository:
    """Everything the rotation and the service's key check read and write, on one connection."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def read_batch(self, after: str, limit: int, *, lock: bool) -> list[StoredCustomer]:
        """The next ``limit`` customers after ``after`` (by id) with their rows; ``lock`` takes them
        FOR UPDATE (the rewriting pass)."""
        rows = await self.connection.execute(_LOCK_CUSTOMERS if lock else _READ_CUSTOMERS,
                                             {"after": after, "limit": limit})
        return [StoredCustomer(
            customer_id=row.customer_id,
            sealed={name: _bytes(getattr(row, f"{name}_enc")) for name in FIELDS},
            bidx={name: _bytes(getattr(row, f"{name}_bidx")) for name in INDEXED},
            name_index=frozenset(bytes(key) for key in row.names),
            external={kind: (bytes(enc), bytes(bidx))
                      for kind, enc, bidx in zip(row.kinds, row.value_encs, row.value_bidxs, strict=True)},
        ) for row in rows]

    async def write_batch(self, rewrites: list[Rewrite]) -> int:
        """Store the rewrites; returns the number of name-index rows written."""
        if not rewrites:
            return 0
        db = self.connection
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

    # ---- the run's guard: a session-level lock, the offline check, the journal

    async def try_lock_rotation(self) -> bool:
        """One rotation at a time per database: a session-level advisory lock (a crash releases it)."""
        return bool(await self.connection.scalar(_TRY_LOCK, {"key": _LOCK}))

    async def unlock_rotation(self) -> None:
        await self.connection.execute(_UNLOCK, {"key": _LOCK})

    async def journal_exists(self) -> bool:
        return bool(await self.connection.scalar(_JOURNAL_EXISTS))

    async def sessions_of(self, application_name: str) -> int:
        """Other sessions on this database under ``application_name`` (a snapshot per transaction)."""
        return int(await self.connection.scalar(_SERVICE_SESSIONS, {"name": application_name}) or 0)

    async def start_journal(self, old_key_id: str, new_key_id: str) -> int:
        return await self.connection.scalar(_START_JOURNAL, {"old": old_key_id, "new": new_key_id})

    async def record_journal(self, journal_id: int, report_json: str, *, complete: bool) -> None:
        await self.connection.execute(_RECORD_JOURNAL, {"id": journal_id, "report": report_json,
                                                        "complete": complete})

    # ---- what the service checks before it starts

    async def latest_rotation(self) -> Any:
        """The last journaled rotation (old_key_id, new_key_id, started_at, finished_at), or None
        (none yet, or a database without the journal)."""
        if not await self.connection.scalar(_JOURNAL_EXISTS):
            return None
        return (await self.connection.execute(_LATEST_ROTATION)).first()

    async def key_sample(self) -> list[tuple[str, bytes]]:
        """A few stored ciphertexts as (field, sealed); none on a database without customers."""
        if not await self.connection.scalar(_CUSTOMERS_EXIST):
            return []
        return [(name, bytes(sealed)) for row in await self.connection.execute(_SAMPLE)
                for name, sealed in zip(FIELDS, row, strict=True) if sealed is not None]


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)
