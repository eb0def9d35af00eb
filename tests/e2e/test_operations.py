"""The operator's tools against the real services and broker: ``crm import`` backfills order
history as events, ``crm dlq replay`` moves dead letters back, and both apply everything once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

import orjson
from aiokafka.structs import ConsumerRecord
from crm_shared.bus.kafka import dead_letter_headers, dead_letter_topic
from crm_shared.events.catalogue import TOPIC_ORDERS
from crm_shared.events.envelope import to_kafka

from tests.harness.events import new_customer_id, order_event
from tests.harness.history import write_order_history
from tests.harness.infra import publish_raw, wait_until


def crm(broker, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers}
    return subprocess.run([sys.executable, "-m", "crm_shared.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


async def order_events(service, metric: str) -> float:
    """Order events counted by ``metric`` (the profile also applies the loyalty's own events)."""
    return sum([await service.metric(metric, type=f"commerce.order.{kind}") for kind in ("paid", "completed")])


async def caught_up(service, metric: str, events: int) -> bool:
    return await order_events(service, metric) >= events


# --- crm import ---------------------------------------------------------------------------------

CUSTOMERS, ORDERS_EACH = 2_000, 5  # 10,000 orders
RETURN_WINDOW = timedelta(days=7)  # the default programme's: points of a paid order are pending that long


async def test_crm_import_of_10000_orders_gives_the_right_profile_and_points_totals_even_when_run_twice(
        tmp_path, broker, make_database, start_service):
    profile_db, loyalty_db = make_database("profile"), make_database("loyalty")
    profile, loyalty = start_service.together([("profile", profile_db, {}), ("loyalty", loyalty_db, {})])
    rows = write_order_history(tmp_path / "orders.csv", customers=CUSTOMERS, orders_each=ORDERS_EACH)
    points = lambda row: int(Decimal(row["total_amount"]).to_integral_value(rounding=ROUND_FLOOR))  # noqa: E731
    cutoff = datetime.now(UTC) - RETURN_WINDOW
    pending = lambda row: not row["completed_at"] and datetime.fromisoformat(row["paid_at"]) > cutoff  # noqa: E731
    expected_available = sum(points(r) for r in rows if not pending(r))
    expected_pending = sum(points(r) for r in rows if pending(r))
    assert expected_pending > 0 and expected_available > 0
    expected_spend = sum(Decimal(r["total_amount"]) for r in rows)
    events = len(rows) + sum(1 for r in rows if r["completed_at"])

    imported = crm(broker, "import", str(tmp_path / "orders.csv"), "--no-progress")
    assert imported.returncode == 0, imported.stderr
    assert f"imported {len(rows)} order(s) as {events} event(s)" in imported.stdout

    await wait_until(lambda: caught_up(loyalty, "crm_events_applied_total", events), timeout_s=180,
                     interval_s=0.5, what="loyalty applied the history")
    await wait_until(lambda: caught_up(profile, "crm_events_applied_total", events), timeout_s=180,
                     interval_s=0.5, what="profile applied the history")

    async def totals() -> tuple:
        customers = await profile_db.fetch("SELECT count(*) AS n, sum(order_count) AS orders FROM customers")
        spend = await profile_db.fetchval("SELECT sum(amount) FROM customer_spend WHERE currency = 'CNY'")
        accounts = await loyalty_db.fetch("SELECT count(*) AS n, sum(available) AS available, "
                                          "sum(pending) AS pending FROM accounts")
        ledger = await loyalty_db.fetchval("SELECT sum(points) FROM ledger WHERE kind = 'earn'")
        return (customers[0]["n"], customers[0]["orders"], spend, accounts[0]["n"], accounts[0]["available"],
                accounts[0]["pending"], ledger)

    first = await totals()
    assert first == (CUSTOMERS, len(rows), expected_spend, CUSTOMERS, expected_available, expected_pending,
                     expected_available + expected_pending)

    # One customer through the API, as an agent sees them.
    sample = rows[0]["customer_id"]
    mine = [r for r in rows if r["customer_id"] == sample]
    async with profile.client() as http:
        view = (await http.get(f"/v1/profiles/{sample}")).json()
    assert view["order_count"] == ORDERS_EACH
    assert Decimal(view["total_spent"]["CNY"]) == sum(Decimal(r["total_amount"]) for r in mine)
    async with loyalty.client() as http:
        account = (await http.get(f"/v1/loyalty/accounts/{sample}")).json()
    assert (account["available"], account["pending"]) == (sum(points(r) for r in mine if not pending(r)),
                                                          sum(points(r) for r in mine if pending(r)))

    # The same file again (an operator re-running an interrupted import): the same event ids,
    # every one a duplicate, nothing counted twice.
    again = crm(broker, "import", str(tmp_path / "orders.csv"), "--no-progress")
    assert again.returncode == 0, again.stderr

    for service in (loyalty, profile):
        await wait_until(lambda s=service: caught_up(s, "crm_events_duplicate_total", events), timeout_s=180,
                         interval_s=0.5, what=f"{service.name} skipped the second import")
        assert await order_events(service, "crm_events_applied_total") == events
    assert await totals() == first


async def test_crm_import_refuses_a_file_with_bad_rows_and_publishes_nothing(tmp_path, broker):
    path = tmp_path / "orders.csv"
    path.write_text("order_id,customer_id,paid_at,total_amount\n"
                    "o-1,c-1,2026-11-01T10:00:00+00:00,100.00\n"
                    "o-2,c-2,2026-11-01T10:00:00,100.00\n"          # no timezone
                    "o-3,c-3,2026-11-01,12.5x\n"                    # not an amount
                    "o-4,c-4,2026-11-01,-3.00\n")                   # negative
    result = crm(broker, "import", str(path), "--no-progress")
    assert result.returncode == 1
    assert ":3:" in result.stderr and ":4:" in result.stderr and ":5:" in result.stderr
    assert ":2:" not in result.stderr
    await broker.create_topics()
    assert await broker.read_to_end([TOPIC_ORDERS]) == []

    path.write_text("order_id,customer,paid_at,total_amount\n")
    result = crm(broker, "import", str(path), "--no-progress")
    assert result.returncode == 1 and "missing column(s): customer_id" in result.stderr
    assert "unknown column(s): customer" in result.stderr


# --- crm dlq replay -----------------------------------------------------------------------------


def as_dead_letter(event, *, group: str, offset: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """What the consumer of ``group`` writes for a record of ``event`` it could not apply."""
    key, value, headers = to_kafka(event)
    record = ConsumerRecord(topic=TOPIC_ORDERS, partition=0, offset=offset, timestamp=0, timestamp_type=0,
                            key=key, value=value, checksum=None, serialized_key_size=len(key),
                            serialized_value_size=len(value), headers=tuple(headers))
    return key, value, dead_letter_headers(record, group, "handler_error", "a bug since fixed")


async def test_crm_dlq_replay_moves_records_back_and_each_is_applied_once(
        broker, make_database, start_service):
    profile_db, loyalty_db = make_database("profile"), make_database("loyalty")
    profile, loyalty = start_service.together([("profile", profile_db, {}), ("loyalty", loyalty_db, {})])
    group = profile.env["CONSUMER_GROUP"]
    dlq = dead_letter_topic(TOPIC_ORDERS, group)
    applied_everywhere, missed = new_customer_id(), new_customer_id()
    seen = order_event("paid", applied_everywhere, "o-seen", amount="300.00")
    lost = order_event("paid", missed, "o-lost", amount="450.00")

    # 1. An order both services applied, and a poison record both dead-letter for real.
    await broker.publish(TOPIC_ORDERS, [seen])
    await publish_raw(broker, TOPIC_ORDERS, key=b"c-poison",
                      value=orjson.dumps({**seen.to_structured(), "id": "poison-1",
                                          "data": {**seen.data, "total_amount": "lots"}}))
    for service in (profile, loyalty):
        await wait_until(lambda s=service: s.metric_at_least(1, "crm_events_dead_lettered_total"),
                         what=f"{service.name} dead-lettered the poison record")
        assert await order_events(service, "crm_events_applied_total") == 1
    # 2. Dead letters of the profile's group as its consumer writes them: an order it failed on
    #    twice (a bug since fixed), and a copy of the order it already applied.
    for offset, event in ((100, lost), (101, lost), (102, seen)):
        key, value, headers = as_dead_letter(event, group=group, offset=offset)
        await publish_raw(broker, dlq, key=key, value=value, headers=headers)

    shown = crm(broker, "dlq", "show", dlq)
    assert shown.returncode == 0, shown.stderr
    assert "4 record(s) to replay" in shown.stdout
    assert "reason handler_error: 3" in shown.stdout and "reason invalid_data: 1" in shown.stdout

    replayed = crm(broker, "dlq", "replay", dlq)
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed 4 record(s) from {dlq}: {TOPIC_ORDERS} 4" in replayed.stdout

    # The lost order is applied once by both services; the copies are duplicates; the poison
    # record is dead-lettered again by each (and not replayed in a loop).
    for service in (profile, loyalty):
        await wait_until(lambda s=service: s.metric_at_least(2, "crm_events_dead_lettered_total"),
                         what=f"{service.name} dead-lettered the replayed poison record")
        await wait_until(lambda s=service: caught_up(s, "crm_events_applied_total", 2),
                         what=f"{service.name} applied the lost order")
        await wait_until(lambda s=service: caught_up(s, "crm_events_duplicate_total", 2),
                         what=f"{service.name} skipped the copies")
        assert await order_events(service, "crm_events_applied_total") == 2
    orders = await profile_db.fetch("SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id")
    assert {row["customer_id"]: row["n"] for row in orders} == {applied_everywhere: 1, missed: 1}
    accounts = await loyalty_db.fetch("SELECT customer_id, available + pending AS points FROM accounts")
    assert {row["customer_id"]: row["points"] for row in accounts} == {applied_everywhere: 300, missed: 450}

    # The replay's group remembers where it stopped: the next run moves only what is new since,
    # the poison record the profile dead-lettered again.
    again = crm(broker, "dlq", "replay", dlq)
    assert again.returncode == 0, again.stderr
    assert "replayed 1 record(s)" in again.stdout
    # The replayed records carry where they came from, and no stale dead-letter headers.
    records = await broker.read_all(TOPIC_ORDERS, expect=7, timeout_s=10)
    replays = [dict(r.headers) for r in records if any(k == "dlq.replayed-from" for k, _ in r.headers)]
    assert len(replays) == 5
    assert all(set(h) & {"dlq.reason", "dlq.error", "dlq.original.topic"} == set() for h in replays)
    assert defaultdict(int, {h["dlq.replayed-from"].decode().split(":")[0]: 1 for h in replays}) == {dlq: 1}
