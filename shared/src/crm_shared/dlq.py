"""Dead-letter topics for operators: see what is in one, and replay it (``crm dlq show|replay``).

A consumer dead-letters a record it cannot apply to ``<topic>.<group>.dlq`` with headers naming
the original topic, partition, offset, consumer group, reason and error (bus/consumer.py). Once
the cause is fixed (a publisher corrected, a bug fixed and deployed), ``replay`` publishes each
record back to its original topic with its original key, value and headers.

Guarantees:

- A replay reads the dead-letter topic with its own consumer group (``crm-dlq-replay`` unless
  told otherwise) and commits that group's offsets only after the republished records were
  acknowledged by the broker, so an interrupted replay loses nothing and a finished one is not
  repeated by the next run.
- A record republished twice (a replay killed between publishing and committing) is still
  applied once: every consumer skips an event id its inbox already holds. The same is true for
  the other consumer groups of the original topic, which already applied the event: they
  count it as a duplicate and change nothing.
- A replay stops at the end the topic had when it started, so a record that fails again (and is
  dead-lettered anew) is not replayed in a loop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from crm_shared.bus.kafka import (
    DLQ_ERROR,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
    Kafka,
    all_delivered,
    connection_options,
    new_producer,
)

DLQ_HEADER_PREFIX = "dlq."
REPLAYED_FROM_HEADER = "dlq.replayed-from"  # kept on the replayed record: where it came back from
DEFAULT_REPLAY_GROUP = "crm-dlq-replay"


@dataclass
class DeadLetterSummary:
    records: int = 0
    by_reason: Counter = field(default_factory=Counter)
    by_original_topic: Counter = field(default_factory=Counter)
    samples: list[dict[str, str]] = field(default_factory=list)  # the first few, for a look


@dataclass
class ReplayReport:
    replayed: int = 0
    to_topics: Counter = field(default_factory=Counter)
    skipped_without_origin: int = 0  # records with no dlq.original.topic header: left alone


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {key: (value or b"").decode("utf-8", "replace") for key, value in record.headers or ()}


async def _read_until_end(consumer: AIOKafkaConsumer, topic: str, *, limit: int | None,
                          on_batch) -> None:
    """Read ``topic`` from the group's position to the end offsets it had at the start."""
    if topic not in await consumer.topics():  # also loads the topic's metadata
        raise SystemExit(f"topic {topic!r} does not exist")
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise SystemExit(f"topic {topic!r} does not exist")
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    end = await consumer.end_offsets(assigned)
    committed = {tp: await consumer.committed(tp) for tp in assigned}
    for tp in assigned:
        if committed[tp] is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed[tp])
    seen = 0
    while True:
        remaining = [tp for tp in assigned if await consumer.position(tp) < end[tp]]
        if not remaining or (limit is not None and seen >= limit):
            return
        batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=500)
        records = [r for tp, rs in batch.items() for r in rs if r.offset < end[tp]]
        if limit is not None:
            records = records[:limit - seen]
        if records:
            seen += len(records)
            await on_batch(records)


def _consumer(kafka: Kafka, group_id: str | None) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(**connection_options(kafka), group_id=group_id, client_id="crm-dlq",
                            enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=50)


async def show(kafka: Kafka, topic: str, *, group_id: str = DEFAULT_REPLAY_GROUP,
               samples: int = 5) -> DeadLetterSummary:
    """What a replay with ``group_id`` would replay now; reads without committing anything."""
    summary = DeadLetterSummary()
    consumer = _consumer(kafka, group_id)
    await consumer.start()
    try:
        async def tally(records: list[ConsumerRecord]) -> None:
            for record in records:
                headers = headers_of(record)
                summary.records += 1
                summary.by_reason[headers.get(DLQ_REASON, "?")] += 1
                summary.by_original_topic[headers.get(DLQ_ORIGINAL_TOPIC, "?")] += 1
                if len(summary.samples) < samples:
                    summary.samples.append({
                        "offset": f"{record.partition}:{record.offset}",
                        "reason": headers.get(DLQ_REASON, "?"),
                        "error": headers.get(DLQ_ERROR, "")[:300],
                        "type": headers.get("ce_type", ""),
                    })

        await _read_until_end(consumer, topic, limit=None, on_batch=tally)
    finally:
        await consumer.stop()
    return summary


async def replay(kafka: Kafka, topic: str, *, group_id: str = DEFAULT_REPLAY_GROUP,
                 limit: int | None = None) -> ReplayReport:
    """Publish the dead letters of ``topic`` back to their original topics (see the module doc)."""
    if not topic.endswith(".dlq"):
        raise SystemExit(f"{topic!r} is not a dead-letter topic (<topic>.<group>.dlq)")
    report = ReplayReport()
    consumer = _consumer(kafka, group_id)
    producer = new_producer(kafka, "crm-dlq-replay")
    await consumer.start()
    await producer.start()
    try:
        async def republish(records: list[ConsumerRecord]) -> None:
            deliveries = []
            for record in records:
                headers = headers_of(record)
                original = headers.get(DLQ_ORIGINAL_TOPIC)
                if not original:
                    report.skipped_without_origin += 1
                    continue
                kept = [(k, v) for k, v in record.headers or () if not k.startswith(DLQ_HEADER_PREFIX)]
                kept.append((REPLAYED_FROM_HEADER, f"{record.topic}:{record.partition}:{record.offset}".encode()))
                deliveries.append(await producer.send(original, value=record.value, key=record.key,
                                                      headers=kept))
                report.to_topics[original] += 1
            await all_delivered(deliveries)  # acknowledged by the broker before the commit below
            report.replayed += len(deliveries)
            last = {}
            for record in records:
                last[TopicPartition(record.topic, record.partition)] = record.offset + 1
            await consumer.commit(last)

        await _read_until_end(consumer, topic, limit=limit, on_batch=republish)
    finally:
        await producer.stop()
        await consumer.stop()
    return report
