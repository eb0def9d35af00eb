"""Following profile merges in a service keyed by customer id: the same table and lookups everywhere.

The profile announces ``crm.profile.customer.merged`` and ``crm.profile.customer.unmerged``. Each
service that holds data per customer records, in its own ``customer_merges`` table, which
duplicate it folded into which survivor and what it moved (``moved``, the service's own ids and
amounts), so an unmerge moves exactly that back. At most one merge per duplicate is in force
(a partial unique index): a merge seen again, under any event id, finds it and changes nothing.

While a merge is in force, events about the duplicate's id apply to the survivor
(:func:`resolving_merged`), as they do in the profile. This module knows no business rule; the
services decide what moving means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_shared.bus.consumer import Inbound
from crm_shared.events.catalogue import ProfileCustomerMergedData, ProfileCustomerUnmergedData


@dataclass(frozen=True, slots=True)
class Merge:
    """A merge (or an unmerge) the profile announced, as plain values for a use case:
    ``duplicate`` into ``survivor`` at ``at``; ``event_id`` names the announcement."""

    survivor: str
    duplicate: str
    at: datetime
    event_id: str = ""
    traceparent: str | None = None


def merges_in(events: Sequence[Inbound[ProfileCustomerMergedData]]) -> list[Merge]:
    return [Merge(e.data.customer_id, e.data.merged_customer_id, e.data.merged_at, e.event.id, e.event.traceparent)
            for e in events]


def unmerges_in(events: Sequence[Inbound[ProfileCustomerUnmergedData]]) -> list[Merge]:
    return [Merge(e.data.customer_id, e.data.unmerged_customer_id, e.data.unmerged_at, e.event.id,
                  e.event.traceparent) for e in events]

MERGED = "crm.profile.customer.merged"
UNMERGED = "crm.profile.customer.unmerged"
# Never redirected: the merge events name both ids on purpose, and an erasure of a duplicate's id
# is about that id (the erasure of a survivor reaching its duplicates is the erasure's own rule).
_LITERAL = frozenset({MERGED, UNMERGED, "crm.profile.customer.erased"})
# A chain (A into B, then B into C) is followed this far; the profile refuses longer ones in
# practice (a survivor that was itself merged cannot take a merge).
_MAX_HOPS = 8

H = TypeVar("H", bound=Callable[..., Any])


def create_merge_table() -> None:
    """For a service's migration: the ``customer_merges`` table (call inside ``upgrade()``)."""
    from alembic import op

    op.execute("""
        CREATE TABLE customer_merges (
            merge_id      bigserial   PRIMARY KEY,
            survivor_id   text        NOT NULL,
            duplicate_id  text        NOT NULL,
            merged_at     timestamptz NOT NULL,
            event_id      text        NOT NULL,
            moved         jsonb       NOT NULL DEFAULT '{}',
            unmerged_at   timestamptz
        )""")
    op.execute("CREATE UNIQUE INDEX customer_merges_in_force ON customer_merges (duplicate_id) "
               "WHERE unmerged_at IS NULL")


_EVER_MERGED = text("""
    SELECT survivor_id, duplicate_id FROM customer_merges
    WHERE (survivor_id, duplicate_id) IN (SELECT * FROM unnest(CAST(:a AS text[]), CAST(:b AS text[])))
       OR (duplicate_id, survivor_id) IN (SELECT * FROM unnest(CAST(:a AS text[]), CAST(:b AS text[])))
""")


async def ever_merged(tx: AsyncConnection, pairs: Iterable[tuple[str, str]]) -> set[frozenset[str]]:
    """Which of these pairs of ids were merged one into the other at some time (in force or undone)."""
    pairs = list(pairs)
    if not pairs:
        return set()
    rows = await tx.execute(_EVER_MERGED, {"a": [a for a, _ in pairs], "b": [b for _, b in pairs]})
    return {frozenset((row.survivor_id, row.duplicate_id)) for row in rows}


def drop_merge_table() -> None:
    from alembic import op

    op.execute("DROP TABLE customer_merges")


@dataclass(frozen=True, slots=True)
class MergeRecord:
    merge_id: int
    survivor_id: str
    duplicate_id: str
    merged_at: datetime
    moved: dict[str, Any]


_IN_FORCE = text("""
    SELECT duplicate_id, survivor_id FROM customer_merges
    WHERE duplicate_id = ANY(CAST(:ids AS text[])) AND unmerged_at IS NULL
""")
_CLAIM = text("""
    INSERT INTO customer_merges (survivor_id, duplicate_id, merged_at, event_id)
    VALUES (:survivor, :duplicate, :at, :event_id)
    ON CONFLICT (duplicate_id) WHERE unmerged_at IS NULL DO NOTHING
    RETURNING merge_id
""")
_SET_MOVED = text("UPDATE customer_merges SET moved = CAST(:moved AS jsonb) WHERE merge_id = :merge_id")
_LOCK_IN_FORCE = text("""
    SELECT merge_id, survivor_id, duplicate_id, merged_at, moved FROM customer_merges
    WHERE survivor_id = :survivor AND duplicate_id = :duplicate AND unmerged_at IS NULL
    FOR UPDATE
""")
_CLOSE = text("UPDATE customer_merges SET unmerged_at = :at WHERE merge_id = :merge_id")


async def survivors_of(tx: AsyncConnection, customer_ids: Iterable[str]) -> dict[str, str]:
    """Each id among ``customer_ids`` that is a duplicate in force, and the profile it now is."""
    pending = sorted(set(customer_ids))
    resolved: dict[str, str] = {}
    current = {c: c for c in pending}
    for _ in range(_MAX_HOPS):
        if not current:
            break
        step = {row.duplicate_id: row.survivor_id
                for row in await tx.execute(_IN_FORCE, {"ids": sorted(set(current.values()))})}
        current = {origin: step[now] for origin, now in current.items() if now in step}
        resolved.update(current)
    return resolved


async def claim_merge(tx: AsyncConnection, *, survivor: str, duplicate: str, at: datetime,
                      event_id: str) -> int | None:
    """Record a merge as in force; ``None`` when one is already in force for the duplicate (a
    redelivered merge, or one sent again under another id)."""
    if survivor == duplicate:
        return None
    return (await tx.execute(_CLAIM, {"survivor": survivor, "duplicate": duplicate, "at": at,
                                      "event_id": event_id})).scalar()


async def set_moved(tx: AsyncConnection, merge_id: int, moved: dict[str, Any]) -> None:
    await tx.execute(_SET_MOVED, {"merge_id": merge_id, "moved": orjson.dumps(moved).decode()})


async def lock_merge_in_force(tx: AsyncConnection, *, survivor: str, duplicate: str) -> MergeRecord | None:
    """The merge to undo, locked; ``None`` when none is in force (never seen, or undone already)."""
    row = (await tx.execute(_LOCK_IN_FORCE, {"survivor": survivor, "duplicate": duplicate})).first()
    if row is None:
        return None
    moved = row.moved if isinstance(row.moved, dict) else orjson.loads(row.moved)
    return MergeRecord(row.merge_id, row.survivor_id, row.duplicate_id, row.merged_at, moved)


async def close_merge(tx: AsyncConnection, merge_id: int, at: datetime) -> None:
    await tx.execute(_CLOSE, {"merge_id": merge_id, "at": at})


def resolving_merged(table: Mapping[str, H]) -> dict[str, H]:
    """The handler table with every handler but the merge's and erasure's own seeing survivors' ids.

    Works on a service's ``HANDLERS`` (``(resources, uow, events)``)."""
    return {event_type: handler if event_type in _LITERAL else _resolving(handler)
            for event_type, handler in table.items()}


def _resolving(handler: H) -> H:
    async def handle(*context: Any) -> None:
        *before, events = context
        connection = before[-1].connection  # the unit of work
        ids = [e.data.customer_id for e in events if getattr(e.data, "customer_id", None)]
        survivors = await survivors_of(connection, ids) if ids else {}
        if survivors:
            events = [Inbound(e.event, e.data.model_copy(update={"customer_id": survivors[e.data.customer_id]}),
                              e.record) if getattr(e.data, "customer_id", None) in survivors else e
                      for e in events]
        await handler(*before, events)
    return handle  # type: ignore[return-value]
