"""The points ledger on the real PostgreSQL (migrated as in production): rows are only ever added,
except that an erasure may replace a row's free-text reason."""

from __future__ import annotations

import asyncpg
import pytest


async def test_the_ledger_refuses_every_change_but_a_new_reason(make_database):
    database = make_database("loyalty")
    await database.execute("""
        INSERT INTO ledger (customer_id, kind, points, available_delta, pending_delta, debt_delta, reason, actor,
                            business_at)
        VALUES ('c-1', 'adjust', 120, 120, 0, 0, 'goodwill for Mei at 5 Lotus Road', 'agent-1', now())""")
    for change in ("UPDATE ledger SET points = 1000, available_delta = 1000",
                   "UPDATE ledger SET reason = '(erased)', points = 1000, available_delta = 1000",
                   "UPDATE ledger SET customer_id = 'c-2'",
                   "DELETE FROM ledger"):
        with pytest.raises(asyncpg.RaiseError, match="the points ledger is append-only"):
            await database.execute(change)
    assert await database.execute("UPDATE ledger SET reason = '(erased)'") == "UPDATE 1"
    assert [tuple(r) for r in await database.fetch("SELECT customer_id, points, available_delta, reason FROM ledger")
            ] == [("c-1", 120, 120, "(erased)")]
