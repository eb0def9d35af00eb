"""Transactional outbox: events are written with the state change, then published by a relay.

A service never publishes inline. :func:`add_to_outbox` inserts rows in the caller's transaction;
:class:`OutboxRelay` claims committed rows (``FOR UPDATE SKIP LOCKED``), publishes them in batches
with ``acks="all"`` and deletes them in the same transaction. It is woken by LISTEN/NOTIFY and polls
as a fallback, so a lost notification or a broken listener connection only delays, never loses.
A crash between publish and delete republishes those rows: at-least-once, made exactly-once in
effect by every consumer's inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import asyncpg
import orjson
import stamina
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm_shared.bus.kafka import all_delivered
from crm_shared.events.catalogue import topic_for
from crm_shared.events.envelope import CloudEvent, to_kafka
from crm_shared.logging import get_logger
from crm_shared.metrics import ServiceMetrics

log = get_logger(__name__)

_INSERT = text("""
    INSERT INTO outbox (event_id, event_type, topic, key, value, headers)
    SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:types AS text[]), CAST(:topics AS text[]),
                         CAST(:keys AS bytea[]), CAST(:values AS bytea[]), CAST(:headers AS bytea[]))
""")
_CLAIM = text("""
    SELECT id, topic, key, value, headers FROM outbox
    ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
""")
_DELETE = text("DELETE FROM outbox WHERE id = ANY(CAST(:ids AS bigint[]))")
_BACKLOG = text("SELECT count(*) FROM outbox")


async def add_to_outbox(tx: AsyncConnection, events: Sequence[CloudEvent]) -> None:
    """Queue events for publishing, in the caller's transaction (one multi-row insert)."""
    if not events:
        return
    ids, types, topics, keys, values, headers = [], [], [], [], [], []
    for event in events:
        key, value, kafka_headers = to_kafka(event)
        ids.append(event.id)
        types.append(event.type)
        topics.append(topic_for(event.type))
        keys.append(key)
        values.append(value)
        headers.append(orjson.dumps([[k, v.decode()] for k, v in kafka_headers]))
    await tx.execute(_INSERT, {"ids": ids, "types": types, "topics": topics, "keys": keys,
                               "values": values, "headers": headers})


class OutboxRelay:
    def __init__(self, *, engine: AsyncEngine, dsn: str, producer: AIOKafkaProducer,
                 metrics: ServiceMetrics, batch_max: int, poll_interval_s: float) -> None:
        self._engine = engine
        self._dsn = dsn
        self._producer = producer
        self._metrics = metrics
        self._batch_max = batch_max
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="outbox-listener")
        try:
            while True:
                published = await self._publish_with_retry()
                if published >= self._batch_max:
                    continue  # more is waiting
                await self._refresh_backlog()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
                self._wake.clear()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener

    async def _publish_with_retry(self) -> int:
        async for attempt in stamina.retry_context(on=_retryable, attempts=None, timeout=None,
                                                    wait_initial=0.2, wait_max=5.0):
            with attempt:
                try:
                    return await self.publish_batch()
                except Exception as exc:
                    self._metrics.outbox_failures.inc()
                    log.warning("outbox publish failed; will retry", error=repr(exc))
                    raise
        return 0  # unreachable: attempts=None retries until success

    async def publish_batch(self) -> int:
        """Publish one batch of committed rows; returns how many were published."""
        async with self._engine.connect() as tx:
            rows = (await tx.execute(_CLAIM, {"limit": self._batch_max})).all()
            if not rows:
                return 0
            await all_delivered(await self._send(rows))  # every record acknowledged by all in-sync replicas
            await tx.execute(_DELETE, {"ids": [row.id for row in rows]})
            await tx.commit()
        for row in rows:
            self._metrics.outbox_published.labels(row.topic).inc()
        return len(rows)

    async def _send(self, rows: Sequence) -> list[asyncio.Future]:
        """Hand rows to the producer one batch per partition, in outbox order.

        ``send_batch`` instead of ``send`` per record: aiokafka's per-record path (a future, a
        metadata check, an accumulator call) was a visible share of the loyalty service's CPU
        (py-spy, docs/benchmarks.md). The
        partition is chosen by the producer's own default partitioner (murmur2 of the key, as
        the Java client), so every record of a customer lands where ``send`` would have put it.
        """
        partitions: dict[str, list[int]] = {}
        by_partition: dict[tuple[str, int], list] = {}
        for row in rows:
            if row.topic not in partitions:
                partitions[row.topic] = sorted(await self._producer.partitions_for(row.topic))
            key = bytes(row.key)
            partition = DefaultPartitioner()(key, partitions[row.topic], partitions[row.topic])
            by_partition.setdefault((row.topic, partition), []).append((key, row))
        futures: list[asyncio.Future] = []
        for (topic, partition), records in by_partition.items():
            batch = self._producer.create_batch()
            for key, row in records:
                headers = [(k, v.encode()) for k, v in orjson.loads(row.headers)]
                if batch.append(key=key, value=bytes(row.value), timestamp=None, headers=headers) is None:
                    futures.append(await self._producer.send_batch(batch, topic, partition=partition))
                    batch = self._producer.create_batch()
                    if batch.append(key=key, value=bytes(row.value), timestamp=None, headers=headers) is None:
                        raise ValueError(f"outbox row {row.id} is larger than the producer's batch size")
            futures.append(await self._producer.send_batch(batch, topic, partition=partition))
        return futures

    async def _refresh_backlog(self) -> None:
        with contextlib.suppress(Exception):
            async with self._engine.connect() as conn:
                self._metrics.outbox_backlog.set((await conn.execute(_BACKLOG)).scalar_one())

    async def _listen(self) -> None:
        """Keep a LISTEN connection open; reconnect with backoff. Polling covers the gaps."""
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
                try:
                    await conn.add_listener("outbox", lambda *_: self._wake.set())
                    self._wake.set()  # rows may have arrived while we were not listening
                    while not conn.is_closed():  # noqa: ASYNC110 - asyncpg offers no close event to await
                        await asyncio.sleep(self._poll_interval_s)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox listener lost; polling until it is back", error=repr(exc))
                await asyncio.sleep(self._poll_interval_s)


def _retryable(exc: Exception) -> bool:
    # Broker and database failures are both worth waiting out; the rows stay in the outbox.
    return not isinstance(exc, asyncio.CancelledError)
