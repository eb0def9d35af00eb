"""Transactional outbox: events are written with the state change, then published by a relay.

A service never publishes inline. :func:`add_to_outbox` inserts rows in the caller's transaction;
:class:`OutboxRelay` claims committed rows (``FOR UPDATE SKIP LOCKED``), publishes them in batches
with ``acks="all"`` and deletes them in the same transaction. It is woken by LISTEN/NOTIFY and polls
as a fallback, so a lost notification or a broken listener connection only delays, never loses.
A crash between publish and delete republishes those rows: at-least-once, made exactly-once in
effect by every consumer's inbox.

A record the broker refuses for good (larger than ``KAFKA_MAX_REQUEST_BYTES``, or a refusal no
retry can change) is dead-lettered to ``crm.outbox.<service>.dlq`` and deleted, so the rows behind it
go on; a transient failure (broker down, timeout, leader moving) retries the whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson
import stamina
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTimestampError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm_shared.bus.kafka import (
    DLQ_ERROR,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
    Kafka,
    ensure_topics,
    outbox_dead_letter_topic,
    record_size,
)
from crm_shared.events.catalogue import topic_for
from crm_shared.events.envelope import CloudEvent, to_kafka
from crm_shared.logging import get_logger
from crm_shared.metrics import ServiceMetrics
from crm_shared.settings import DEFAULT_MAX_REQUEST_BYTES

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

# What the broker says about one record that no retry will change. Authorization and
# authentication failures are not here: they are the deployment's to fix, and dead-lettering the
# whole outbox meanwhile would bury every event.
_REFUSALS = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError, InvalidTimestampError,
             InvalidTopicError, PolicyViolationError, UnsupportedForMessageFormatError)
REASON_TOO_LARGE = "too-large"
REASON_REFUSED = "refused-by-broker"
VALUE_OMITTED_HEADER = "dlq.value.omitted-bytes"  # a dead letter too large to carry its value


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


def is_refusal(exc: BaseException) -> bool:
    """The broker (or the producer's own size check) refuses this record for good."""
    return isinstance(exc, _REFUSALS)


class OutboxRelay:
    def __init__(self, *, engine: AsyncEngine, dsn: str, producer: AIOKafkaProducer,
                 metrics: ServiceMetrics, batch_max: int, poll_interval_s: float, service: str,
                 kafka: Kafka, max_record_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        self._engine = engine
        self._dsn = dsn
        self._producer = producer
        self._metrics = metrics
        self._batch_max = batch_max
        self._poll_interval_s = poll_interval_s
        self._kafka = kafka
        self._max_record_bytes = max_record_bytes
        self.dead_letter_topic = outbox_dead_letter_topic(service)
        self._dead_letter_topic_ready = False
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
            refused = await self._deliver(rows)  # every other record acknowledged by all in-sync replicas
            if refused:
                await self._dead_letter(refused)
            await tx.execute(_DELETE, {"ids": [row.id for row in rows]})
            await tx.commit()
        dead = {row.id for row, _, _ in refused}
        for row in rows:
            if row.id not in dead:
                self._metrics.outbox_published.labels(row.topic).inc()
        return len(rows)

    async def _deliver(self, rows: Sequence) -> list[tuple[Any, str, str]]:
        """Publish ``rows``; return those refused for good, with a reason and the error.

        Raises on any other failure (after every send settled), so the batch is retried whole.
        """
        refused: list[tuple[Any, str, str]] = []
        sendable = []
        for row in rows:
            # send_batch skips the producer's own max_request_size check: make it here.
            size = record_size(bytes(row.key), bytes(row.value), _headers(row))
            if size > self._max_record_bytes:
                limit = self._max_record_bytes
                refused.append((row, REASON_TOO_LARGE,
                                f"the record is {size} bytes, more than KAFKA_MAX_REQUEST_BYTES={limit}"))
            else:
                sendable.append(row)
        batches = await self._send(sendable)
        results = await asyncio.gather(*(future for future, _ in batches), return_exceptions=True)
        failed = [(batch_rows, result) for (_, batch_rows), result in zip(batches, results, strict=True)
                  if isinstance(result, BaseException)]
        transient = next((exc for _, exc in failed if not is_refusal(exc)), None)
        if transient is not None:
            raise transient
        # The broker refused a whole partition batch: find its records one by one.
        for batch_rows, _ in failed:
            for row in batch_rows:
                try:
                    await (await self._producer.send(row.topic, key=bytes(row.key), value=bytes(row.value),
                                                      headers=_headers(row)))
                except KafkaError as exc:
                    if not is_refusal(exc):
                        raise
                    reason = REASON_TOO_LARGE if isinstance(exc, _SIZE_REFUSALS) else REASON_REFUSED
                    refused.append((row, reason, repr(exc)))
        return refused

    async def _dead_letter(self, refused: list[tuple[Any, str, str]]) -> None:
        if not self._dead_letter_topic_ready:
            await ensure_topics(self._kafka, [self.dead_letter_topic], partitions=1)
            self._dead_letter_topic_ready = True
        for row, reason, error in refused:
            headers = [*_headers(row), (DLQ_ORIGINAL_TOPIC, row.topic.encode()), (DLQ_REASON, reason.encode()),
                       (DLQ_ERROR, error.encode("utf-8", "replace")[:4000])]
            value = bytes(row.value)
            if record_size(bytes(row.key), value, headers) > self._max_record_bytes:
                # Kafka cannot carry it at all: keep what identifies it (ce_id, ce_type, the key).
                headers.append((VALUE_OMITTED_HEADER, str(len(value)).encode()))
                value = b""
            try:
                await (await self._producer.send(self.dead_letter_topic, key=bytes(row.key), value=value,
                                                  headers=headers))
            except KafkaError as exc:
                if not is_refusal(exc) or not value:
                    raise
                headers.append((VALUE_OMITTED_HEADER, str(len(value)).encode()))
                await (await self._producer.send(self.dead_letter_topic, key=bytes(row.key), value=b"",
                                                  headers=headers))
            self._metrics.events_dead_lettered.labels(row.topic, reason).inc()
            # No payload in the log: it may hold PII. The id and type find it in the dead letters.
            log.error("outbox record refused by the broker; dead-lettered", topic=row.topic,
                      dead_letter_topic=self.dead_letter_topic, reason=reason, error=error[:300],
                      event_id=_header(row, "ce_id"), event_type=_header(row, "ce_type"))

    async def _send(self, rows: Sequence) -> list[tuple[asyncio.Future, list]]:
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
        futures: list[tuple[asyncio.Future, list]] = []
        for (topic, partition), records in by_partition.items():
            batch, in_batch = self._producer.create_batch(), []
            for key, row in records:
                headers = _headers(row)
                # An empty batch takes any record (sizes were checked above), so a full one is sent
                # and the record starts the next.
                if batch.append(key=key, value=bytes(row.value), timestamp=None, headers=headers) is None:
                    futures.append((await self._producer.send_batch(batch, topic, partition=partition), in_batch))
                    batch, in_batch = self._producer.create_batch(), []
                    batch.append(key=key, value=bytes(row.value), timestamp=None, headers=headers)
                in_batch.append(row)
            futures.append((await self._producer.send_batch(batch, topic, partition=partition), in_batch))
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


_SIZE_REFUSALS = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)


def _headers(row) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in orjson.loads(row.headers)]


def _header(row, name: str) -> str | None:
    return next((v for k, v in orjson.loads(row.headers) if k == name), None)


def _retryable(exc: Exception) -> bool:
    # Broker and database failures are both worth waiting out; the rows stay in the outbox.
    return not isinstance(exc, asyncio.CancelledError)
