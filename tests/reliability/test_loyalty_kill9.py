"""The points ledger after a SIGKILL in the middle of a run: every order earns exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from crm_shared.events.catalogue import TOPIC_ORDERS

from tests.harness.events import order_event
from tests.harness.infra import publish_events, wait_until

EVENTS = 6_000
CUSTOMERS = 300


async def test_sigkill_mid_run_then_restart_earns_every_order_once(broker, make_database, start_service):
    database = make_database("loyalty")
    service = start_service("loyalty", database)
    paid_at = datetime.now(UTC) - timedelta(days=1)
    events = [order_event("paid", f"k-{i % CUSTOMERS}", f"o-{i}", amount=f"{10 + i % 90}.{i % 100:02d}",
                          at=paid_at) for i in range(EVENTS)]
    expected: dict[str, int] = {}
    for event in events:  # regular tier, 1 point per whole CNY, floored; nobody reaches VIP in a day
        customer = event.data["customer_id"]
        expected[customer] = expected.get(customer, 0) + int(float(event.data["total_amount"]))

    producer = await broker.producer()

    async def publish_steadily() -> None:
        for start in range(0, EVENTS, 200):
            await publish_events(producer, TOPIC_ORDERS, events[start:start + 200])
            await asyncio.sleep(0.1)

    publishing = asyncio.create_task(publish_steadily())
    applied_at_kill = await wait_until(
        lambda: database.fetchval("SELECT CASE WHEN count(*) >= 1000 THEN count(*) END FROM inbox"),
        timeout_s=60, interval_s=0.01, what="a part of the run applied")
    service.kill()
    assert applied_at_kill < EVENTS, "the kill must land mid-run"
    await publishing
    # A publisher retry after the crash, with new event ids: the order ids make it harmless.
    await publish_events(producer, TOPIC_ORDERS, [
        order_event("paid", e.data["customer_id"], e.data["order_id"], amount=e.data["total_amount"], at=paid_at)
        for e in events[:500]])
    await producer.stop()

    start_service("loyalty", database)
    await wait_until(lambda: database.fetchval("SELECT count(*) = $1 FROM inbox", EVENTS + 500), timeout_s=120,
                     interval_s=0.2, what="every event applied after the restart")
    rows = await database.fetch("SELECT customer_id, pending FROM accounts")
    pending = {r["customer_id"]: r["pending"] for r in rows}
    assert pending == expected
    assert await database.fetchval("SELECT count(*) FROM ledger") == EVENTS
    assert await database.fetchval("SELECT count(*) FROM orders") == EVENTS
    assert await database.fetchval("""
        SELECT count(*) FROM accounts a
        WHERE pending <> (SELECT sum(pending_delta) FROM ledger l WHERE l.customer_id = a.customer_id)""") == 0
