"""``Idempotency-Key`` on POST: a retried command returns the first answer instead of acting twice.

The key, a fingerprint of the request and the answer are stored in the same transaction as the
command's effect, so either both are committed or neither is. A transaction-scoped advisory lock
on the key makes a second request with the same key, arriving while the first is still being
served, answer 409 at once instead of waiting or acting.

    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    ... the effect ...
    await idempotency.finish(uow, request, identity, key, 201, answer)
    await uow.commit()
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
from crm_shared.uow import UnitOfWork

IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=8, max_length=200,
                                       description="A unique key per command (a UUID); a retry with the "
                                                   "same key returns the first answer.")]

REPLAYED_HEADER = "idempotent-replayed"


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


async def begin(uow: UnitOfWork[Any], request: Request, identity: Identity,
                key: str) -> JSONResponse | None:
    """The stored answer if this key was used before; None if the command should run now.

    Raises a 409 while the same key is being served, a 422 if the key came with another request."""
    stored = await uow.stored_answer(identity.subject, key, await _fingerprint(request))
    if stored is None:
        return None
    return JSONResponse(orjson.loads(stored.body), status_code=stored.status, headers={REPLAYED_HEADER: "true"})


async def finish(uow: UnitOfWork[Any], request: Request, identity: Identity, key: str,
                 status: int, answer: BaseModel | Any) -> None:
    """Store the answer in the command's transaction (the caller commits)."""
    payload = answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
    await uow.store_answer(identity.subject, key, await _fingerprint(request), status, orjson.dumps(payload))


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
