"""A refit's rescoring chunk racing a consumer transaction never leaves the older score behind
(component test: the repository's statements on the real PostgreSQL, the two sides interleaved
by hand in the order that once lost the newer score)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
from crm_churn.domain.model import prior_model
from crm_churn.repository import history_changed, load_history, write_scores
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

LEVELS = {"medium_at": 0.4, "high_at": 0.7}
PAID = text("""INSERT INTO churn_orders (order_id, customer_id, paid_at, currency, total_amount)
               VALUES (:order_id, :customer_id, :at, 'CNY', 100)""")


async def test_a_chunk_that_read_before_a_consumer_commit_does_not_overwrite_its_score(make_database):
    database = make_database("churn")
    engine = create_async_engine(database.url)
    model = prior_model()
    now = datetime.now(UTC)
    try:
        async with engine.connect() as tx:
            await tx.execute(PAID, {"order_id": "o-old", "customer_id": "c-race", "at": now - timedelta(days=200)})
            await tx.commit()
        async with engine.connect() as chunk, engine.connect() as consumer:
            stale = await load_history(chunk, now, ["c-race"])  # the chunk reads first
            # The consumer applies a new order and scores it, and commits...
            await consumer.execute(PAID, {"order_id": "o-new", "customer_id": "c-race",
                                          "at": now - timedelta(minutes=1)})
            await history_changed(consumer, ["c-race"])
            await write_scores(consumer, model, await load_history(consumer, now, ["c-race"]), at=now, **LEVELS)
            await consumer.commit()
            # ...then the chunk writes what it computed from the older history.
            written, _ = await write_scores(chunk, model, stale, at=now + timedelta(seconds=1), **LEVELS)
            await chunk.commit()
        assert written == 0
        row = (await database.fetch("SELECT history_version, indicators FROM churn_scores"))[0]
        assert row["history_version"] == 1 and orjson.loads(row["indicators"])["orders"] == 2
    finally:
        await engine.dispose()


async def test_a_chunk_waiting_on_an_open_consumer_transaction_sees_its_commit(make_database):
    database = make_database("churn")
    engine = create_async_engine(database.url)
    model = prior_model()
    now = datetime.now(UTC)
    try:
        async with engine.connect() as tx:
            await tx.execute(PAID, {"order_id": "o-1", "customer_id": "c-wait", "at": now - timedelta(days=100)})
            await write_scores(tx, model, await load_history(tx, now, ["c-wait"]), at=now, **LEVELS)
            await tx.commit()
        async with engine.connect() as chunk, engine.connect() as consumer:
            stale = await load_history(chunk, now, ["c-wait"])
            await chunk.commit()
            await consumer.execute(PAID, {"order_id": "o-2", "customer_id": "c-wait", "at": now - timedelta(minutes=1)})
            await history_changed(consumer, ["c-wait"])
            await write_scores(consumer, model, await load_history(consumer, now, ["c-wait"]), at=now, **LEVELS)
            # The chunk's upsert waits for the consumer's row lock...
            waiting = asyncio.create_task(write_scores(chunk, model, stale, at=now, **LEVELS))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            await consumer.commit()
            written, _ = await asyncio.wait_for(waiting, 10)
            await chunk.commit()
        assert written == 0  # ...and then finds the newer history's score and leaves it
        row = (await database.fetch("SELECT history_version, indicators FROM churn_scores"))[0]
        assert row["history_version"] == 1 and orjson.loads(row["indicators"])["orders"] == 2
    finally:
        await engine.dispose()
