"""The outbox relay against the real database and broker, run in-process so it can be stopped
and started at will."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
)
from crm_shared.bus.kafka import DLQ_ORIGINAL_TOPIC, DLQ_REASON, new_producer
from crm_shared.bus.outbox import VALUE_OMITTED_HEADER, OutboxRelay, add_to_outbox, is_refusal
from crm_shared.db import create_engine
from crm_shared.events.catalogue import TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent, from_kafka
from crm_shared.metrics import ServiceMetrics
from crm_shared.settings import ServiceSettings

from tests.harness.infra import wait_until


def _updated(customer_id: str, n: int) -> CloudEvent:
    return CloudEvent.new(type="crm.profile.customer.updated", source="crm/profile", subject=customer_id,
                          data={"customer_id": customer_id, "changed": ["orders"], "order_count": n,
                                "total_spent": {}, "first_order_at": None, "last_order_at": None})


async def test_the_relay_publishes_what_was_committed_while_it_was_down_and_nothing_rolled_back(
        broker, make_database):
    database = make_database("profile")
    settings = ServiceSettings(service_name="profile", database_url=database.url,
                               kafka_bootstrap_servers=broker.bootstrap_servers)
    engine = create_engine(settings)
    producer = new_producer(broker.bootstrap_servers, "relay-test")
    await producer.start()
    metrics = ServiceMetrics("profile")

    def relay() -> OutboxRelay:
        return OutboxRelay(engine=engine, dsn=settings.database_dsn, producer=producer, metrics=metrics,
                           batch_max=7, poll_interval_s=0.2, service="profile", kafka=broker.bootstrap_servers)

    try:
        # First life of the relay: it publishes a first event, then it is stopped.
        first = asyncio.create_task(relay().run())
        async with engine.connect() as tx:
            await add_to_outbox(tx, [_updated("c-0", 0)])
            await tx.commit()
        await wait_until(lambda: database.fetchval("SELECT count(*) = 0 FROM outbox"), what="first publish")
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first

        # While it is down: 20 committed events, and 5 whose transaction rolls back.
        committed = [_updated(f"c-{i}", i) for i in range(1, 21)]
        async with engine.connect() as tx:
            await add_to_outbox(tx, committed)
            await tx.commit()
        async with engine.connect() as tx:
            await add_to_outbox(tx, [_updated("ghost", i) for i in range(5)])
            await tx.rollback()
        assert await database.fetchval("SELECT count(*) FROM outbox") == 20

        # Second life: it publishes the backlog in batches of 7 and empties the outbox.
        second = asyncio.create_task(relay().run())
        records = await broker.read_all(TOPIC_PROFILE, expect=21)
        # The relay counts a batch after its commit: the last batch may be on the topic, not yet counted.
        published = metrics.outbox_published.labels(TOPIC_PROFILE)
        await wait_until(lambda: _at_least(published, 21), what="the last batch counted")
        second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second
    finally:
        await producer.stop()
        await engine.dispose()

    events = [from_kafka(r.value, r.headers) for r in records]
    assert len(events) == 21
    assert {e.id for e in events} >= {e.id for e in committed}
    assert not any(e.subject == "ghost" for e in events)
    # Binary mode, keyed by the customer, in commit order for each customer.
    assert all(r.key == e.subject.encode() for r, e in zip(records, events, strict=True))
    assert await database.fetchval("SELECT count(*) FROM outbox") == 0
    assert metrics.outbox_published.labels(TOPIC_PROFILE)._value.get() == 21


async def test_the_relay_is_woken_by_notify_not_only_by_polling(broker, make_database):
    database = make_database("profile")
    settings = ServiceSettings(service_name="profile", database_url=database.url,
                               kafka_bootstrap_servers=broker.bootstrap_servers)
    engine = create_engine(settings)
    producer = new_producer(broker.bootstrap_servers, "relay-test")
    await producer.start()
    # A poll interval far longer than the wait below: only LISTEN/NOTIFY can deliver in time.
    relay = OutboxRelay(engine=engine, dsn=settings.database_dsn, producer=producer,
                        metrics=ServiceMetrics("profile"), batch_max=100, poll_interval_s=60,
                        service="profile", kafka=broker.bootstrap_servers)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # the listener is connected and the first (empty) pass is done
        async with engine.connect() as tx:
            await add_to_outbox(tx, [_updated("c-notify", 1)])
            await tx.commit()
        await wait_until(lambda: database.fetchval("SELECT count(*) = 0 FROM outbox"), timeout_s=5,
                         what="publish woken by NOTIFY")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()
        await engine.dispose()


def _noted(customer_id: str, note: str) -> CloudEvent:
    return CloudEvent.new(type="crm.profile.customer.updated", source="crm/profile", subject=customer_id,
                          data={"customer_id": customer_id, "changed": [note], "order_count": 1,
                                "total_spent": {}, "first_order_at": None, "last_order_at": None})


async def test_a_record_too_large_for_the_broker_is_dead_lettered_and_the_rows_behind_it_go_on(
        broker, make_database):
    """send_batch skips the producer's size check, and a real Kafka refuses an oversized record for
    good: the relay used to retry that batch forever. Tansu accepts any size, so the limit is the
    client's own (KAFKA_MAX_REQUEST_BYTES), which the relay now enforces."""
    database = make_database("profile")
    settings = ServiceSettings(service_name="profile", database_url=database.url,
                               kafka_bootstrap_servers=broker.bootstrap_servers)
    engine = create_engine(settings)
    producer = new_producer(broker.bootstrap_servers, "relay-test")
    await producer.start()
    metrics = ServiceMetrics("profile")
    # One customer, so all three share a partition batch; the middle one is 20 KB.
    before, huge, after = _noted("c-big", "a"), _noted("c-big", "x" * 20_000), _noted("c-big", "b")
    relay = OutboxRelay(engine=engine, dsn=settings.database_dsn, producer=producer, metrics=metrics,
                        batch_max=100, poll_interval_s=0.2, service=f"profile-{broker.namespace}",
                        kafka=broker.bootstrap_servers, max_record_bytes=8_192)
    async with engine.connect() as tx:
        await add_to_outbox(tx, [before, huge, after])
        await tx.commit()
    task = asyncio.create_task(relay.run())
    try:
        published = await broker.events_published_by(database, TOPIC_PROFILE)
        dead = await broker.read_to_end([relay.dead_letter_topic])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()
        await engine.dispose()

    assert [e.id for e in published if e.subject == "c-big"] == [before.id, after.id]
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["ce_id"] == huge.id.encode()
    assert headers[DLQ_ORIGINAL_TOPIC] == TOPIC_PROFILE.encode()
    assert headers[DLQ_REASON] == b"too-large"
    assert dead[0].key == b"c-big"
    # The value cannot travel on Kafka at all; its size is noted instead.
    assert dead[0].value == b""
    assert int(headers[VALUE_OMITTED_HEADER]) > 20_000
    assert metrics.outbox_published.labels(TOPIC_PROFILE)._value.get() == 2
    assert metrics.events_dead_lettered.labels(TOPIC_PROFILE, "too-large")._value.get() == 1


def test_only_a_refusal_of_the_record_itself_dead_letters_it_and_everything_else_is_retried():
    assert is_refusal(MessageSizeTooLargeError())
    assert is_refusal(RecordListTooLargeError())
    # Broker down, slow or moving a leader: retried. Missing rights: the deployment's to fix,
    # retried too rather than burying the whole outbox in dead letters.
    for transient in (KafkaConnectionError(), KafkaTimeoutError(), NotLeaderForPartitionError(),
                      TopicAuthorizationFailedError()):
        assert not is_refusal(transient)


async def _at_least(counter, n: int) -> bool:
    return counter._value.get() >= n
