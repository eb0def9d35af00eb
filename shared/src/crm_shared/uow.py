"""The unit of work: one transaction, and everything a use case may do inside it.

A use case receives a :class:`UnitOfWork` and touches the world only through it:

- ``uow.repo``: the service's repository (all its SQL), bound to this transaction;
- ``uow.publish(events)``: the outbox, written in the same transaction as the change (the relay
  sends it after the commit, so an event exists exactly when its change does);
- ``uow.claim_inbox(keys)``: the consumer's exactly-once claim of event ids;
- ``uow.stored_answer`` / ``uow.store_answer``: the ``Idempotency-Key`` answers of commands.

Nothing is kept unless the use case (or the consumer, for a batch) calls ``commit()``: leaving the
block without it rolls back. The batched consumer and the HTTP routes open it the same way, so a
use case runs unchanged under either, and under the in-memory fake of the unit tests.

This is cosmicpython's unit of work without its session and event collection: our repositories
are set-based SQL over one connection, and events go to the outbox as they are raised rather than
being collected from aggregates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm_shared.errors import ConflictError, RuleViolation

if TYPE_CHECKING:
    from crm_shared.events.envelope import CloudEvent

R = TypeVar("R")
RepositoryFactory = Callable[[AsyncConnection], R]

InboxKey = tuple[str, str, str]
"""(source, type, id) of an event."""

# The inbox key is (source, type, id), not the CloudEvents (source, id) alone: a producer is
# authorised per topic (Kafka ACLs, the gateway's scopes) and a type belongs to one topic, so an
# event can only collide with what its own producer may send. A tracker allowed to write
# interactions cannot make the consumers skip a registration by reusing its source and id.
_CLAIM_INBOX = text("""
    INSERT INTO inbox (source, event_id, event_type)
    SELECT * FROM unnest(CAST(:sources AS text[]), CAST(:ids AS text[]), CAST(:types AS text[]))
    ON CONFLICT DO NOTHING
    RETURNING source, event_type, event_id
""")
# A transaction-scoped advisory lock on the key: a second request with the same key, arriving while
# the first is still being served, is refused at once instead of waiting or acting.
_LOCK_KEY = text("SELECT pg_try_advisory_xact_lock(hashtextextended(:owner || chr(31) || :key, 0))")
_FIND_ANSWER = text("SELECT fingerprint, status, body FROM idempotency_keys WHERE owner = :owner AND key = :key")
_SAVE_ANSWER = text("""
    INSERT INTO idempotency_keys (owner, key, fingerprint, status, body)
    VALUES (:owner, :key, :fingerprint, :status, :body)
""")


class KeyInFlight(ConflictError):
    default_code = "idempotency-in-flight"


class KeyReused(RuleViolation):
    default_code = "idempotency-key-reused"


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status: int
    body: bytes


class UnitOfWork(Generic[R]):
    """One transaction on one connection, with the service's repository bound to it."""

    def __init__(self, connection: AsyncConnection, repository: RepositoryFactory[R]) -> None:
        self.connection = connection
        self.repo: R = repository(connection)

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        from crm_shared.bus.outbox import add_to_outbox  # the bus imports this module

        await add_to_outbox(self.connection, events)

    async def claim_inbox(self, keys: Sequence[InboxKey]) -> set[InboxKey]:
        """Record event keys as seen; returns those not seen before (the ones to apply)."""
        if not keys:
            return set()
        claimed = await self.connection.execute(
            _CLAIM_INBOX, {"sources": [k[0] for k in keys], "types": [k[1] for k in keys], "ids": [k[2] for k in keys]}
        )
        return {(row.source, row.event_type, row.event_id) for row in claimed}

    async def stored_answer(self, owner: str, key: str, fingerprint: bytes) -> StoredAnswer | None:
        """The answer stored for this caller's key, or None if the command should run now.

        Raises :class:`KeyInFlight` while another transaction serves the same key, and
        :class:`KeyReused` when the key was used for a different request."""
        params = {"owner": owner, "key": key}
        if not (await self.connection.execute(_LOCK_KEY, params)).scalar():
            raise KeyInFlight("a request with this Idempotency-Key is still being processed; retry later")
        row = (await self.connection.execute(_FIND_ANSWER, params)).first()
        if row is None:
            return None
        if bytes(row.fingerprint) != fingerprint:
            raise KeyReused("this Idempotency-Key was used with a different request; use a new key")
        return StoredAnswer(row.status, bytes(row.body))

    async def store_answer(self, owner: str, key: str, fingerprint: bytes, status: int, body: bytes) -> None:
        await self.connection.execute(
            _SAVE_ANSWER, {"owner": owner, "key": key, "fingerprint": fingerprint, "status": status, "body": body}
        )

    async def commit(self) -> None:
        await self.connection.commit()

    async def rollback(self) -> None:
        await self.connection.rollback()


@asynccontextmanager
async def unit_of_work(
    engine: AsyncEngine, repository: RepositoryFactory[R], *, read_only: bool = False
) -> AsyncIterator[UnitOfWork[R]]:
    """Open a unit of work; it rolls back on leaving unless committed.

    ``read_only`` runs each statement on its own (autocommit): a read that needs no snapshot across
    statements holds no transaction open while the caller formats its answer."""
    async with engine.connect() as conn:
        if read_only:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield UnitOfWork(conn, repository)


def uow_dependency(repository: RepositoryFactory[R], *, read_only: bool = False) -> Any:
    """A FastAPI dependency type giving a route a unit of work on the service's repository.

    The connection is taken through the runtime's request gate (first come, first served)."""

    async def open_for_request(request: Request) -> AsyncIterator[UnitOfWork[R]]:
        runtime = request.app.state.runtime
        async with runtime.db_gate, unit_of_work(runtime.engine, repository, read_only=read_only) as uow:
            yield uow

    return Annotated[UnitOfWork[R], Depends(open_for_request)]
