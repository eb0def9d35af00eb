"""aiokafka clients configured the one way this project uses them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from crm_shared.logging import get_logger

log = get_logger(__name__)


def new_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    # acks="all" without the idempotent producer: Tansu cannot do InitProducerId (design brief §2);
    # duplicates from producer retries are absorbed by every consumer's inbox.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=15_000,
    )


def new_consumer(bootstrap_servers: str, group_id: str, topics: Iterable[str], *,
                 fetch_max_wait_ms: int, client_id: str, session_timeout_ms: int = 10_000,
                 heartbeat_interval_ms: int = 3_000) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,  # offsets are committed only after the database commit
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
    )


async def ensure_topics(bootstrap_servers: str, topics: Iterable[str], *, partitions: int,
                        replication_factor: int = 1) -> list[str]:
    """Create topics explicitly (never rely on auto-create); existing ones are left alone."""
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="crm-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(t, partitions if not t.endswith(".dlq") else 1, replication_factor)
                     for t in missing])
            except TopicAlreadyExistsError:
                pass  # another process created it between list and create
            # Give the broker a moment to propagate metadata before clients subscribe.
            for _ in range(50):
                if set(missing) <= set(await admin.list_topics()):
                    break
                await asyncio.sleep(0.1)
            log.info("topics created", topics=missing)
        return missing
    finally:
        await admin.close()


async def all_delivered(deliveries) -> None:
    """Wait for every send's acknowledgement; raise the first failure only after all are settled.

    A plain ``gather`` raises at the first failure and leaves the other futures' errors unread
    ("Future exception was never retrieved" in the log after a broker pause).
    """
    results = await asyncio.gather(*deliveries, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def dead_letter_topic(topic: str, group_id: str) -> str:
    return f"{topic}.{group_id}.dlq"


# Headers a dead letter carries besides the original record's own (read by `crm dlq`, dlq.py).
DLQ_ORIGINAL_TOPIC = "dlq.original.topic"
DLQ_REASON = "dlq.reason"
DLQ_ERROR = "dlq.error"


def dead_letter_headers(record, group_id: str, reason: str, error: str) -> list[tuple[str, bytes]]:
    """The original record's headers plus where it came from and why it could not be applied."""
    return [*list(record.headers or ()),
            (DLQ_ORIGINAL_TOPIC, record.topic.encode()),
            ("dlq.original.partition", str(record.partition).encode()),
            ("dlq.original.offset", str(record.offset).encode()),
            ("dlq.consumer.group", group_id.encode()),
            (DLQ_REASON, reason.encode()),
            (DLQ_ERROR, error.encode("utf-8", "replace")[:4000])]
