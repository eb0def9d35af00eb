"""A refit's rescoring chunk racing a consumer transaction never leaves the older score behind
(component test: the repository's statements on the real PostgreSQL, the two sides interleaved
by hand in the order that once lost the newer score)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from crm_churn.domain.model import prior_model
from crm_churn.repository import ChurnRepository
from crm_churn.usecases.scoring import write_scores
from crm_shared.uow import UnitOfWork
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.harness.infra import wait_until

LEVELS = {"medium_at": 0.4, "high_at": 0.7}
MODEL = prior_model()
PAID = text("""INSERT INTO churn_orders (order_id, customer_id, paid_at, currency, total_amount)
               VALUES (:order_id, :customer_id, :at, 'CNY', 100)""")


@pytest.fixture
def database(make_database):
    return make_database("churn")


@pytest.fixture
async def engine(database):
    engine = create_async_engine(database.url)
    yield engine
    await engine.dispose()


def _uow(db) -> UnitOfWork[ChurnRepository]:
    return UnitOfWork(db, ChurnRepository)


async def _scored_order(db, customer_id: str, order_id: str, at: datetime, now: datetime, *, event: bool) -> None:
    """What the consumer does for a paid order: record it, mark the history changed, score."""
    await db.execute(PAID, {"order_id": order_id, "customer_id": customer_id, "at": at})
    uow = _uow(db)
    if event:
        await uow.repo.history_changed([customer_id])
    await write_scores(uow, MODEL, await uow.repo.load_history(now, [customer_id]), at=now, **LEVELS)


async def _stored(database) -> tuple[int, float]:
    row = (await database.fetch("SELECT history_version, indicators FROM churn_scores"))[0]
    return row["history_version"], orjson.loads(row["indicators"])["orders"]


async def test_a_chunk_that_read_before_a_consumer_commit_does_not_overwrite_its_score(engine, database):
    model, now = MODEL, datetime.now(UTC)
    async with engine.connect() as tx:
        await tx.execute(PAID, {"order_id": "o-old", "customer_id": "c-race", "at": now - timedelta(days=200)})
        await tx.commit()
    async with engine.connect() as chunk, engine.connect() as consumer:
        stale = await _uow(chunk).repo.load_history(now, ["c-race"])  # the chunk reads first
        # The consumer applies a new order and scores it, and commits...
        await _scored_order(consumer, "c-race", "o-new", now - timedelta(minutes=1), now, event=True)
        await consumer.commit()
        # ...then the chunk writes what it computed from the older history.
        written, _ = await write_scores(_uow(chunk), model, stale, at=now + timedelta(seconds=1), **LEVELS)
        await chunk.commit()
    assert written == 0
    assert await _stored(database) == (1, 2)


async def test_a_chunk_waiting_on_an_open_consumer_transaction_sees_its_commit(engine, database):
    model, now = MODEL, datetime.now(UTC)
    async with engine.connect() as tx:
        await _scored_order(tx, "c-wait", "o-1", now - timedelta(days=100), now, event=False)
        await tx.commit()
    async with engine.connect() as chunk, engine.connect() as consumer:
        stale = await _uow(chunk).repo.load_history(now, ["c-wait"])
        await chunk.commit()
        await _scored_order(consumer, "c-wait", "o-2", now - timedelta(minutes=1), now, event=True)
        chunk_pid = (await chunk.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        # The chunk's upsert waits for the consumer's row lock (PostgreSQL says so, no sleep)...
        waiting = asyncio.create_task(write_scores(_uow(chunk), model, stale, at=now, **LEVELS))

        async def blocked_on_a_lock() -> bool:
            return await database.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", chunk_pid) is True
        await wait_until(blocked_on_a_lock, timeout_s=10, what="the chunk waiting on the consumer's lock")
        assert not waiting.done()
        await consumer.commit()
        written, _ = await asyncio.wait_for(waiting, 10)
        await chunk.commit()
    assert written == 0  # ...and then finds the newer history's score and leaves it
    assert await _stored(database) == (1, 2)
