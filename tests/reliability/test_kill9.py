"""Exactly-once effect when the profile service is killed with SIGKILL in the middle of a run."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from crm_shared.events.catalogue import TOPIC_ORDERS

from tests.harness.events import order_paid
from tests.harness.infra import publish_events, wait_until

EVENTS = 10_000
CUSTOMERS = 500


async def test_sigkill_mid_run_then_restart_gives_exactly_the_right_counts(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    events = [order_paid(f"k-{i % CUSTOMERS}", amount=f"{1 + i % 7}.{i % 100:02d}") for i in range(EVENTS)]
    expected_spend: dict[str, Decimal] = {}
    for event in events:
        customer = event.data["customer_id"]
        expected_spend[customer] = expected_spend.get(customer, Decimal(0)) + Decimal(event.data["total_amount"])

    producer = await broker.producer()

    async def publish_steadily() -> None:
        # 10,000 events over ~4 s so the kill lands while the consumer is busy.
        for start in range(0, EVENTS, 250):
            await publish_events(producer, TOPIC_ORDERS, events[start:start + 250])
            await asyncio.sleep(0.1)

    publishing = asyncio.create_task(publish_steadily())
    applied_at_kill = await wait_until(
        lambda: database.fetchval("SELECT CASE WHEN count(*) >= 1500 THEN count(*) END FROM inbox"),
        timeout_s=60, interval_s=0.01, what="a third of the run applied")
    service.kill()
    assert applied_at_kill < EVENTS, "the kill must land mid-run"

    await publishing
    # A publisher retry after the crash: the first 1,000 events again.
    await publish_events(producer, TOPIC_ORDERS, events[:1000])
    await producer.stop()

    restarted = start_service("profile", database)
    await wait_until(lambda: database.fetchval("SELECT count(*) = $1 FROM inbox", EVENTS), timeout_s=120,
                     interval_s=0.2, what="every event applied after the restart")
    await wait_until(lambda: restarted.metric_at_least(1000, "crm_events_duplicate_total"), timeout_s=60,
                     what="the retried events recognised as duplicates")

    rows = await database.fetch("SELECT customer_id, order_count FROM customers")
    assert len(rows) == CUSTOMERS
    assert {r["order_count"] for r in rows} == {EVENTS // CUSTOMERS}
    spend = {r["customer_id"]: r["amount"] for r in await database.fetch("SELECT * FROM customer_spend")}
    assert spend == expected_spend
    assert await database.fetchval("SELECT count(*) FROM orders") == EVENTS
