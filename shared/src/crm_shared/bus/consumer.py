"""The batched idempotent consumer.

One loop per service: ``getmany`` → parse and validate every record (bad ones are dead-lettered) →
apply the batch in **one** database transaction whose first statement records the event ids in the
inbox (a redelivered event is skipped) → commit the database → send dead letters → commit offsets.

- Handlers are registered in one table by event type (a service's ``HANDLERS``) and receive a unit
  of work and all events of their type in a run, so they can use set-based SQL. Order is kept per
  record key (the customer id): a batch is cut into *stages* at every change of event type within
  one key's events, and stages run in order (records without a key keep their partition's order;
  see ``_stages``).
- A transient failure (database down, deadlock, broker unreachable) is retried with backoff without
  committing offsets. Any other failure of a batch makes the consumer apply its events one by one,
  so only the event that really fails goes to the dead-letter topic and the others are applied.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import stamina
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_shared.bus.kafka import (
    Kafka,
    all_delivered,
    dead_letter_headers,
    dead_letter_topic,
    ensure_topics,
    new_consumer,
)
from crm_shared.db import is_transient
from crm_shared.events.catalogue import EventData, UnknownEventType, data_model_for, topic_for
from crm_shared.events.envelope import CloudEvent, EnvelopeError, from_kafka, validation_summary
from crm_shared.logging import get_logger
from crm_shared.metrics import ServiceMetrics
from crm_shared.uow import RepositoryFactory, UnitOfWork, unit_of_work

log = get_logger(__name__)

D = TypeVar("D", bound=EventData)


@dataclass(frozen=True, slots=True)
class Inbound(Generic[D]):
    """A validated event handed to a handler, with the record it came from."""

    event: CloudEvent
    data: D
    record: ConsumerRecord

    @property
    def topic(self) -> str:
        return self.record.topic

    @property
    def partition(self) -> int:
        return self.record.partition


Handler = Callable[[UnitOfWork[Any], list[Inbound[Any]]], Awaitable[None]]
HandlerTable = Mapping[str, Handler]
"""Event type → handler. The handler writes in the given unit of work and never commits."""

ServiceHandler = Callable[[Any, UnitOfWork[Any], list[Inbound[Any]]], Awaitable[None]]
"""A handler as a service declares it: ``(resources, uow, events)``; ``resources`` is what the
service's app opened (its stores, its scorer), bound once the service starts."""


def topics_of(handlers: Mapping[str, Any]) -> tuple[str, ...]:
    """The topics a handler table consumes: those its event types belong to."""
    return tuple(sorted({topic_for(event_type) for event_type in handlers}))


def bind_handlers(handlers: Mapping[str, ServiceHandler], resources: Any) -> HandlerTable:
    def bound(handler: ServiceHandler) -> Handler:
        async def handle(uow: UnitOfWork[Any], events: list[Inbound[Any]]) -> None:
            await handler(resources, uow, events)
        return handle
    return {event_type: bound(handler) for event_type, handler in handlers.items()}


class HandlerFailed(Exception):
    """A handler failed for a reason retrying will not fix; the event is dead-lettered."""


def _is_retryable(exc: Exception) -> bool:
    return is_transient(exc) or isinstance(exc, KafkaError)


class EventConsumer:
    def __init__(self, *, engine: AsyncEngine, producer: AIOKafkaProducer, metrics: ServiceMetrics,
                 handlers: HandlerTable, topics: Sequence[str], group_id: str, kafka: Kafka,
                 repository: RepositoryFactory[Any] = lambda _: None,
                 fetch_max_wait_ms: int, batch_max: int, client_id: str,
                 session_timeout_ms: int = 10_000, heartbeat_interval_ms: int = 3_000) -> None:
        self._engine = engine
        self._producer = producer
        self._metrics = metrics
        self._handlers = handlers
        self._repository = repository
        self._topics = list(topics)
        self._group_id = group_id
        self._kafka = kafka
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._batch_max = batch_max
        self._client_id = client_id
        self._session_timeout_ms = session_timeout_ms
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._fresh_in_batch = 0  # events applied for the first time by the batch being processed
        self._lag_series: set[TopicPartition] = set()  # partitions whose lag this process exports
        self.ready = asyncio.Event()  # set once partitions are assigned (tests and /readyz use it)

    @property
    def group_id(self) -> str:
        return self._group_id

    async def start(self) -> None:
        await ensure_topics(self._kafka, [dead_letter_topic(t, self._group_id) for t in self._topics],
                            partitions=1)
        self._consumer = new_consumer(self._kafka, self._group_id, (),
                                      fetch_max_wait_ms=self._fetch_max_wait_ms, client_id=self._client_id,
                                      session_timeout_ms=self._session_timeout_ms,
                                      heartbeat_interval_ms=self._heartbeat_interval_ms)
        self._consumer.subscribe(self._topics, listener=_DropRevokedLag(self))
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def run(self) -> None:
        assert self._consumer is not None, "start() first"
        consumer = self._consumer
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=self._batch_max)
            if consumer.assignment():
                self.ready.set()
            if batch:
                await self.process(batch)
                await self._commit(batch)
            await self._update_lag(consumer)

    async def process(self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> int:
        """Apply one fetched batch: everything valid exactly once, everything invalid dead-lettered.

        Returns how many events it applied for the first time (duplicates and ignored types not counted).
        """
        started = time.perf_counter()
        self._fresh_in_batch = 0
        valid: list[Inbound[Any]] = []
        dead: list[tuple[ConsumerRecord, str, str]] = []
        for records in batch.values():
            for record in records:
                try:
                    event = from_kafka(record.value, record.headers)
                    data = data_model_for(event.type).model_validate(event.data)
                except EnvelopeError as exc:
                    dead.append((record, "invalid_envelope", str(exc)))
                    continue
                except UnknownEventType as exc:
                    dead.append((record, "unknown_type", str(exc)))
                    continue
                except ValidationError as exc:
                    dead.append((record, "invalid_data", validation_summary(exc)))
                    continue
                if topic_for(event.type) != record.topic:
                    # Whoever may write this topic may not speak for another one's types.
                    dead.append((record, "wrong_topic",
                                 f"{event.type!r} events belong on {topic_for(event.type)!r}"))
                    continue
                if event.type not in self._handlers:
                    self._metrics.events_ignored.labels(event.type).inc()
                    continue
                valid.append(Inbound(event, data, record))
        if valid:
            failed = await self._apply_with_retry(valid)
            dead.extend(failed)
        if dead:
            await self._dead_letter(dead)
        self._metrics.consumer_batch_duration.observe(time.perf_counter() - started)
        self._metrics.consumer_batch_size.observe(sum(len(r) for r in batch.values()))
        return self._fresh_in_batch

    async def _apply_with_retry(self, events: list[Inbound[Any]]) -> list[tuple[ConsumerRecord, str, str]]:
        try:
            await self._retry_transient(self._apply, events)
            return []
        except Exception as exc:  # not transient: find the poison events one by one
            log.warning("batch failed; applying its events one by one", error=repr(exc), size=len(events))
        failed = []
        for inbound in events:
            try:
                await self._retry_transient(self._apply, [inbound])
            except Exception as exc:
                log.error("event failed; dead-lettering it", event_id=inbound.event.id,
                          event_type=inbound.event.type, error=repr(exc))
                failed.append((inbound.record, "handler_failed", repr(exc)[:1000]))
        return failed

    async def _retry_transient(self, fn, events) -> None:
        async for attempt in stamina.retry_context(on=_is_retryable, attempts=None, timeout=None,
                                                    wait_initial=0.1, wait_max=5.0):
            with attempt:
                if attempt.num > 1:
                    self._metrics.consumer_retries.inc()
                    log.warning("retrying batch after a transient failure", attempt=attempt.num)
                await fn(events)

    async def _apply(self, events: list[Inbound[Any]]) -> None:
        """One transaction: inbox claim, then the handlers stage by stage, then commit."""
        unique: dict[tuple[str, str, str], Inbound[Any]] = {}
        for inbound in events:
            unique.setdefault((inbound.event.source, inbound.event.type, inbound.event.id), inbound)
        async with unit_of_work(self._engine, self._repository) as uow:
            fresh_keys = await uow.claim_inbox(list(unique))
            fresh = [i for k, i in unique.items() if k in fresh_keys]
            for stage in _stages(fresh):
                for event_type, group in stage.items():
                    await self._handlers[event_type](uow, group)
            await uow.commit()
        self._fresh_in_batch += len(fresh)
        applied: dict[str, int] = defaultdict(int)
        for inbound in fresh:
            applied[inbound.event.type] += 1
        for event_type, n in applied.items():
            self._metrics.events_applied.labels(event_type).inc(n)
        fresh_ids = {id(i) for i in fresh}
        for inbound in events:
            if id(inbound) not in fresh_ids:
                self._metrics.events_duplicate.labels(inbound.event.type).inc()

    async def _dead_letter(self, dead: list[tuple[ConsumerRecord, str, str]]) -> None:
        """Publish dead letters before the offsets are committed, so none is lost."""
        async def send_all() -> None:
            sends = []
            for record, reason, error in dead:
                sends.append(await self._producer.send(
                    dead_letter_topic(record.topic, self._group_id), key=record.key, value=record.value,
                    headers=dead_letter_headers(record, self._group_id, reason, error)))
            await all_delivered(sends)

        await self._retry_transient(lambda _: send_all(), None)
        for record, reason, error in dead:
            self._metrics.events_dead_lettered.labels(record.topic, reason).inc()
            log.warning("record dead-lettered", topic=record.topic, partition=record.partition,
                        offset=record.offset, reason=reason, error=error[:300])

    async def _commit(self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> None:
        assert self._consumer is not None
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # Partitions moved to another member mid-batch. The new owner will redeliver from the
            # last committed offset and its inbox check makes that harmless.
            log.warning("offset commit refused after rebalance; redelivery will be deduplicated",
                        error=repr(exc))

    def drop_lag(self, partitions) -> None:
        """Remove the lag series of partitions this process no longer owns: their new owner
        reports them, and a stale copy here would add to it in every ``sum``."""
        for tp in partitions:
            if tp in self._lag_series:
                self._lag_series.discard(tp)
                self._metrics.consumer_lag.remove(self._group_id, tp.topic, str(tp.partition))

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        # end_offsets() is not usable on Tansu (it answers 1); the high watermark that every fetch
        # response carries is, and it costs no extra request.
        assigned = consumer.assignment()
        self.drop_lag(self._lag_series - assigned)  # in case a revocation was not announced
        for tp in assigned:
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await consumer.position(tp)
            except IllegalStateError:
                continue  # revoked meanwhile
            if tp not in consumer.assignment():
                continue  # revoked while we waited for the position
            self._metrics.consumer_lag.labels(self._group_id, tp.topic, str(tp.partition)).set(
                max(0, highwater - position))
            self._lag_series.add(tp)


class _DropRevokedLag(ConsumerRebalanceListener):
    """Removes a revoked partition's lag series before the group hands it to another member."""

    def __init__(self, consumer: EventConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked) -> None:
        self._consumer.drop_lag(revoked)

    async def on_partitions_assigned(self, assigned) -> None:
        """Nothing to do: an assigned partition's lag series appears with the next lag update."""


def _stages(events: list[Inbound[Any]]) -> list[dict[str, list[Inbound[Any]]]]:
    """Cut events into stages so each customer's order survives grouping by type.

    Order is promised per record key (the customer id: producers key every event by it), not per partition: a
    new stage starts when the type changes within one key's events; stage k of every key runs
    before stage k+1. Keys are independent, so a partition whose customers interleave placed,
    paid and completed orders still runs as a few set-based statements per batch, not one per
    event (bench/profile.py; figures in docs/benchmarks.md). Records without a key fall back to
    their partition.
    """
    stages: list[dict[str, list[Inbound[Any]]]] = []
    position: dict[tuple[str, int, bytes | None], tuple[int, str]] = {}
    for inbound in events:
        record_key = inbound.record.key
        key = (inbound.topic, -1 if record_key is not None else inbound.partition, record_key)
        stage, last_type = position.get(key, (-1, ""))
        if inbound.event.type != last_type:
            stage += 1
            position[key] = (stage, inbound.event.type)
        while len(stages) <= stage:
            stages.append(defaultdict(list))
        stages[stage][inbound.event.type].append(inbound)
    return stages
