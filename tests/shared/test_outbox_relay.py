"""The outbox relay against the real database and broker, run in-process so it can be stopped
and started at will."""

from __future__ import annotations

import asyncio
import contextlib

from crm_shared.bus.kafka import new_producer
from crm_shared.bus.outbox import OutboxRelay, add_to_outbox
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
                           batch_max=7, poll_interval_s=0.2)

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
                        metrics=ServiceMetrics("profile"), batch_max=100, poll_interval_s=60)
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
