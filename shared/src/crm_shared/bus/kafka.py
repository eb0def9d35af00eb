"""aiokafka clients configured the one way this project uses them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from crm_shared.logging import get_logger
from crm_shared.settings import DEFAULT_MAX_REQUEST_BYTES, KafkaConnection

log = get_logger(__name__)

Kafka = KafkaConnection | str
"""A broker connection; a bare bootstrap string means PLAINTEXT (tests, the embedded dev broker)."""


def connection_options(kafka: Kafka) -> dict[str, Any]:
    """The keyword arguments every aiokafka client (producer, consumer, admin) gets for ``kafka``."""
    if isinstance(kafka, str):
        kafka = KafkaConnection(bootstrap_servers=kafka)
    options: dict[str, Any] = {"bootstrap_servers": kafka.bootstrap_servers,
                               "security_protocol": str(kafka.security_protocol)}
    if kafka.encrypted:
        # Verifies the broker's certificate and host name (create_ssl_context's defaults).
        options["ssl_context"] = create_ssl_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None,
            certfile=str(kafka.ssl_certfile) if kafka.ssl_certfile else None,
            keyfile=str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None,
            password=kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None)
    if kafka.sasl_mechanism is not None:
        assert kafka.sasl_password is not None  # KafkaConnection validates the combination
        # aiokafka takes the SCRAM credentials under the PLAIN names too.
        options.update(sasl_mechanism=str(kafka.sasl_mechanism), sasl_plain_username=kafka.sasl_username,
                       sasl_plain_password=kafka.sasl_password.get_secret_value())
    return options


def new_producer(kafka: Kafka, client_id: str) -> AIOKafkaProducer:
    # acks="all" without the idempotent producer: the embedded Tansu broker cannot do InitProducerId;
    # duplicates from producer retries are absorbed by every consumer's inbox.
    return AIOKafkaProducer(
        **connection_options(kafka),
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=2,
        max_request_size=kafka.max_request_bytes if isinstance(kafka, KafkaConnection) else DEFAULT_MAX_REQUEST_BYTES,
        max_batch_size=256 * 1024,
        request_timeout_ms=15_000,
    )


def new_consumer(kafka: Kafka, group_id: str | None, topics: Iterable[str] = (), *,
                 fetch_max_wait_ms: int, client_id: str, session_timeout_ms: int = 10_000,
                 heartbeat_interval_ms: int = 3_000) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        **connection_options(kafka),
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,  # offsets are committed only after the database commit
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
    )


async def ensure_topics(kafka: Kafka, topics: Iterable[str], *, partitions: int,
                        replication_factor: int = 1) -> list[str]:
    """Create topics explicitly (never rely on auto-create); existing ones are left alone."""
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(**connection_options(kafka), client_id="crm-admin")
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


def outbox_dead_letter_topic(service: str) -> str:
    """Where a service's outbox relay puts the records the broker refuses for good."""
    return f"crm.outbox.{service}.dlq"


def record_size(key: bytes | None, value: bytes | None, headers) -> int:
    """A record's size as the producer's own max_request_size check computes it."""
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)


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
