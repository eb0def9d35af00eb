"""``Idempotency-Key`` on POST: a retried command returns the first answer instead of acting twice.

The key, a fingerprint of the request and the answer are stored in the same transaction as the
command's effect, so either both are committed or neither is. A transaction-scoped advisory lock
on the key makes a second request with the same key, arriving while the first is still being
served, answer 409 at once instead of waiting or acting.

    replay = await idempotency.begin(db, request, identity, key)
    if replay is not None:
        return replay
    ... the effect ...
    await idempotency.finish(db, request, identity, key, 201, answer)
    await db.commit()
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import orjson
from alembic import op
from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_shared.auth import Identity
from crm_shared.problems import PROBLEM_BASE, Problem

IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=8, max_length=200,
                                       description="A unique key per command (a UUID); a retry with the "
                                                   "same key returns the first answer.")]

REPLAYED_HEADER = "idempotent-replayed"

_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended(:owner || chr(31) || :key, 0))")
_FIND = text("SELECT fingerprint, status, body FROM idempotency_keys WHERE owner = :owner AND key = :key")
_SAVE = text("""
    INSERT INTO idempotency_keys (owner, key, fingerprint, status, body)
    VALUES (:owner, :key, :fingerprint, :status, :body)
""")


def create_idempotency_table() -> None:
    """For a service's migration: the stored answers. Old rows may be pruned after a day."""
    op.execute("""
        CREATE TABLE idempotency_keys (
            owner        text        NOT NULL,   -- who sent it: keys are unique per caller
            key          text        NOT NULL,
            fingerprint  bytea       NOT NULL,   -- SHA-256 of method, path and body
            status       integer     NOT NULL,
            body         bytea       NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (owner, key)
        )""")
    op.execute("CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at)")


async def _fingerprint(request: Request) -> bytes:
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b" " + request.url.path.encode() + b"\n")
    digest.update(await request.body())
    return digest.digest()


async def begin(db: AsyncConnection, request: Request, identity: Identity, key: str) -> JSONResponse | None:
    """The stored answer if this key was used before; None if the command should run now."""
    params = {"owner": identity.subject, "key": key}
    if not (await db.execute(_LOCK, params)).scalar():
        raise Problem(409, "Conflict", "a request with this Idempotency-Key is still being processed; retry later",
                      type_=PROBLEM_BASE + "idempotency-in-flight")
    row = (await db.execute(_FIND, params)).first()
    if row is None:
        return None
    if bytes(row.fingerprint) != await _fingerprint(request):
        raise Problem(422, "Unprocessable Content",
                      "this Idempotency-Key was used with a different request; use a new key",
                      type_=PROBLEM_BASE + "idempotency-key-reused")
    return JSONResponse(orjson.loads(bytes(row.body)), status_code=row.status, headers={REPLAYED_HEADER: "true"})


async def finish(db: AsyncConnection, request: Request, identity: Identity, key: str, status: int,
                 answer: BaseModel | Any) -> None:
    """Store the answer in the command's transaction (the caller commits)."""
    payload = answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
    await db.execute(_SAVE, {"owner": identity.subject, "key": key, "fingerprint": await _fingerprint(request),
                             "status": status, "body": orjson.dumps(payload)})


_FORGET = text("""
    DELETE FROM idempotency_keys
    WHERE convert_from(body, 'UTF8')::jsonb ->> :field = ANY(CAST(:values AS text[]))
""")


async def forget_answers(db: AsyncConnection, *, field: str, values: list[str]) -> None:
    """Delete stored answers whose top-level ``field`` is one of ``values`` (an erasure: answers may
    quote what was erased). A retry with such a key runs the command again. Scans the table, which
    is fine for a rare privacy command."""
    if values:
        await db.execute(_FORGET, {"field": field, "values": values})
