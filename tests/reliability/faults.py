"""One fault-injection scenario, run at any size: ``await run_faulty(rig, orders=…, faults=[…])``.

The input is built from a seed: ``orders`` paid orders of regular-tier customers (20 each, each
customer under the vip threshold, so every order earns floor(amount) points whatever the order of
arrival), 10 % of them re-sent later with the same event id (duplicates), 5 % swapped with the same
customer's next order (reordered), and poison records of four kinds at known positions. The
fault-free expectation is computed from the input alone; after the faults every figure of profile
and loyalty must equal it, every consumer must have caught up and the dead-letter topics must hold
exactly the poison records.

Faults (each run in turn while the input is published steadily):

- ``kill:<service>``: SIGKILL once a part of the run is applied, then restart.
- ``commit_gap:<service>``: restart the service through ``tests/harness/commit_gap.py`` so it
  SIGKILLs itself after a batch's database commit and before its offset commit; restart it plainly.
  The run then proves the gap was hit: the inbox held events whose offsets were not committed.
- ``pg_restart``: stop the (private) PostgreSQL, keep it down 3 s, start it on the same data.
- ``broker_pause``: SIGSTOP the broker for 10 s, then SIGCONT.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from crm_shared.bus.kafka import dead_letter_topic
from crm_shared.devstack import EmbeddedPostgres
from crm_shared.events.catalogue import ALL_TOPICS, TOPIC_ORDERS
from crm_shared.events.envelope import CloudEvent, to_kafka

from tests.harness.commit_gap import KILL_AFTER_ENV
from tests.harness.events import order_event
from tests.harness.infra import Broker, Database, ServiceProcess, wait_until

SERVICES = ("profile", "loyalty", "churn")  # every consumer of commerce.orders (a run takes those in rig.databases)
ORDERS_PER_CUSTOMER = 20  # × at most 239.99 < 5,000: nobody reaches vip, every order earns floor(amount)
PARTITIONS = 4  # Broker.create_topics' default


@dataclass
class Record:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str
    poison: str | None = None  # the dead-letter reason expected, for a poison record


@dataclass
class Plan:
    """The records in publishing order and what a fault-free run must end with."""

    records: list[Record]
    valid_ids: set[str]
    poison: dict[str, str]  # event id → dead-letter reason
    order_count: dict[str, int]
    spend: dict[str, Decimal]
    pending: dict[str, int]
    available: dict[str, int]
    duplicates: int
    reordered: int


def build_plan(orders: int, *, seed: int = 20261201, now: datetime | None = None) -> Plan:
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    customers = max(1, orders // ORDERS_PER_CUSTOMER)
    events: list[CloudEvent] = []
    order_count: dict[str, int] = {}
    spend: dict[str, Decimal] = {}
    pending: dict[str, int] = {}
    available: dict[str, int] = {}
    for i in range(orders):
        customer = f"f-{i % customers:05d}"
        amount = Decimal(rng.randint(1000, 23999)) / 100
        # Paid 1–5 days ago (points pending) or 9–60 days ago (the 7-day return window closed: available);
        # nothing near the window's end, so the clock cannot move an order across it during the run.
        age = timedelta(days=rng.uniform(1, 5) if rng.random() < 0.5 else rng.uniform(9, 60))
        event = order_event("paid", customer, f"fo-{seed}-{i}", amount=f"{amount:.2f}", at=now - age,
                            event_id=str(uuid.UUID(int=rng.getrandbits(128))))
        events.append(event)
        order_count[customer] = order_count.get(customer, 0) + 1
        spend[customer] = spend.get(customer, Decimal(0)) + amount
        points = int(amount.to_integral_value(ROUND_FLOOR))
        bucket = pending if age < timedelta(days=7) else available
        bucket[customer] = bucket.get(customer, 0) + points
        pending.setdefault(customer, 0)
        available.setdefault(customer, 0)

    # 5 % reordered: swapped with the same customer's next order (counts, sums and points of regular
    # customers do not depend on the order of arrival).
    reordered = 0
    for i in rng.sample(range(orders - customers), max(1, orders // 20)) if orders > customers else []:
        events[i], events[i + customers] = events[i + customers], events[i]
        reordered += 1

    placed: list[tuple[float, Record]] = [(i, _record(e)) for i, e in enumerate(events)]
    # 10 % duplicates: the same event (same id) again, a little later (some in the same batch, some
    # after a fault).
    duplicates = max(1, orders // 10)
    for i in rng.sample(range(orders), duplicates):
        placed.append((i + rng.uniform(0.5, 2000), _record(events[i])))
    # Poison records at known positions, four kinds in turn.
    poison: dict[str, str] = {}
    for n in range(max(8, orders // 1000)):
        record = _poison(n, f"f-{rng.randrange(customers):05d}", now)
        poison[record.event_id] = record.poison or ""
        placed.append((rng.uniform(0, orders), record))
    placed.sort(key=lambda p: p[0])
    return Plan(records=[r for _, r in placed], valid_ids={e.id for e in events}, poison=poison,
                order_count=order_count, spend=spend, pending=pending, available=available,
                duplicates=duplicates, reordered=reordered)


def _record(event: CloudEvent, poison: str | None = None) -> Record:
    key, value, headers = to_kafka(event)
    return Record(key, value, headers, event.id, poison)


def _poison(n: int, customer: str, now: datetime) -> Record:
    event = order_event("paid", customer, f"poison-{n}", amount="10.00", at=now - timedelta(days=1),
                        event_id=f"poison-{n}")
    kind = n % 4
    if kind == 0:  # not JSON
        record = _record(event, "invalid_envelope")
        record.value = b"{this is not json"
    elif kind == 1:  # a required field missing
        record = _record(event, "invalid_data")
        record.value = orjson.dumps({k: v for k, v in event.data.items() if k != "total_amount"})
    elif kind == 2:  # a field of the wrong type
        record = _record(event, "invalid_data")
        record.value = orjson.dumps({**event.data, "total_amount": "lots", "items": "many"})
    else:  # a type nobody knows
        record = _record(event.model_copy(update={"type": "commerce.order.teleported"}), "unknown_type")
    return record


@dataclass
class Rig:
    """What a run needs from the test's fixtures."""

    broker: Broker
    databases: dict[str, Database]
    start_service: Callable[..., ServiceProcess]
    postgres: EmbeddedPostgres | None = None  # private server, for ``pg_restart``
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    hooked: set[str] = field(default_factory=set)  # services running with the commit-gap hook armed
    log: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def group(self, service: str) -> str:
        return self.services[service].env["CONSUMER_GROUP"]

    def start(self, service: str, **env: str) -> ServiceProcess:
        self.services[service] = self.start_service(service, self.databases[service], **env)
        return self.services[service]

    async def restart(self, service: str, **env: str) -> ServiceProcess:
        """Start (again) in a thread: the start waits for the port, and publishing must go on meanwhile."""
        return await asyncio.to_thread(self.start, service, **env)

    def note(self, text: str) -> None:
        line = f"{time.monotonic() - self.started:6.1f}s {text}"
        self.log.append(line)
        print(line)  # shown by pytest when the test fails


@dataclass
class GapProof:
    service: str
    committed: dict[TopicPartition, int]  # every partition the group reads → its committed offset at death
    applied: set[str]  # every event id in the inbox at death (orders, and the other services' events)


async def run_faulty(rig: Rig, *, orders: int, faults: list[str], seed: int = 20261201,
                     chunk: int = 250, pause_s: float = 0.05, settle_timeout_s: float = 300) -> Plan:
    """Publish the plan's records steadily while running ``faults`` in turn, then check the end state."""
    plan = build_plan(orders, seed=seed)
    rig.note(f"{len(plan.records)} records: {orders} orders, {plan.duplicates} duplicates, "
             f"{plan.reordered} reordered, {len(plan.poison)} poison")
    # A leading commit_gap fault arms its service's hook from the start (saves a restart).
    hooked: set[str] = set()
    for fault in faults:
        if not fault.startswith("commit_gap:"):
            break
        hooked.add(fault.partition(":")[2])
    await asyncio.gather(*(rig.restart(service, **(_HOOK if service in hooked else {})) for service in rig.databases))
    rig.hooked |= hooked
    rig.note("services started")
    offsets: list[tuple[int, int, str]] = []  # (partition, offset, event id) of every record published
    total = len(plan.records)
    # The publisher runs ahead of the next fault by ``margin`` records at most, so every fault lands
    # while the consumers still have work, however fast they are, and some of the input is still
    # unpublished at the last fault (half the gap between two faults' shares).
    margin = max(300, total // (2 * (len(faults) + 1)))
    shares = [(n + 0.5) / (len(faults) + 1) for n in range(len(faults))]
    allowed_more = asyncio.Event()
    progress = {"sent": 0, "allowed": int(total * shares[0]) + margin if faults else total}
    producer = await rig.broker.producer()

    async def publish() -> None:
        for start in range(0, len(plan.records), chunk):
            while start >= progress["allowed"]:
                allowed_more.clear()
                await allowed_more.wait()
            futures = [await producer.send(TOPIC_ORDERS, key=r.key, value=r.value, headers=r.headers)
                       for r in plan.records[start:start + chunk]]
            for record, meta in zip(plan.records[start:start + chunk], await asyncio.gather(*futures), strict=True):
                offsets.append((meta.partition, meta.offset, record.event_id))
            progress["sent"] = start + chunk
            await asyncio.sleep(pause_s)

    publishing = asyncio.create_task(publish())
    proofs: list[GapProof] = []
    try:
        for n, (fault, share) in enumerate(zip(faults, shares, strict=True)):
            # Spread the faults over the run: each waits for its share of the input to be sent.
            await wait_until(lambda share=share: _true(progress["sent"] >= min(total, total * share)),
                             timeout_s=settle_timeout_s, interval_s=0.05, what=f"publishing before {fault}")
            rig.note(f"fault {fault} at {progress['sent']} records sent")

            def publish_on(n=n) -> None:  # let the publisher go on to the next fault's share
                progress["allowed"] = int(total * shares[n + 1]) + margin if n + 1 < len(faults) else total
                allowed_more.set()
            proof = await _inject(rig, fault, applied_share=share * 0.9, valid=len(plan.valid_ids),
                                  publish_on=publish_on)
            if proof is not None:
                proofs.append(proof)
            publish_on()
        await publishing
    finally:
        if not publishing.done():
            publishing.cancel()
        await producer.stop()
    rig.note("published everything")
    await check_end_state(rig, plan, offsets, settle_timeout_s=settle_timeout_s)
    for proof in proofs:
        await _check_gap_proof(rig.broker, proof)
    return plan


async def _true(value: bool) -> bool:
    return value


_HOOK = {KILL_AFTER_ENV: "3"}  # run through tests/harness/commit_gap.py


async def _inject(rig: Rig, fault: str, *, applied_share: float, valid: int,
                  publish_on: Callable[[], None]) -> GapProof | None:
    kind, _, service = fault.partition(":")
    if kind == "kill":
        # Kill once the service applied its share of the run, and before it applied everything; and
        # only once it applied something since its last start (else the kill hits a process that
        # has done nothing yet). If it is past its share already, the publisher goes on meanwhile.
        db = rig.databases[service]
        share, since_start = int(valid * applied_share), await _applied(db) + 1
        if since_start > share:
            publish_on()
        await wait_until(lambda: _more_applied(db, max(share, since_start)), timeout_s=300, interval_s=0.02,
                         what=f"{service} applying its share before the kill")
        rig.services[service].kill()
        applied = await _applied(db)
        rig.note(f"killed {service} with {applied} of {valid} applied")
        assert applied < valid, "the kill must land mid-run"
        await rig.restart(service)
        rig.note(f"restarted {service}")
        return None
    if kind == "commit_gap":
        if service not in rig.hooked:
            await asyncio.to_thread(rig.services[service].stop)
            await rig.restart(service, **_HOOK)
            rig.hooked.add(service)
        process = rig.services[service]
        # The hook fires on a batch that applies something new: the service may have caught up with
        # everything published so far, so the publisher goes on now.
        publish_on()
        await wait_until(lambda: _true(process.process.poll() is not None), timeout_s=300, interval_s=0.02,
                         what=f"{service} killing itself between the commits")
        rig.hooked.discard(service)
        assert process.process.returncode == -9, f"{service} exited with {process.process.returncode}, not SIGKILL"
        proof = GapProof(service, await committed_offsets(rig.broker, rig.group(service)),
                         set(await rig.databases[service].fetch_texts("SELECT event_id FROM inbox")))
        rig.note(f"{service} killed itself between the commits with {len(proof.applied)} applied; "
                 f"committed offsets {_short(proof.committed)}")
        await rig.restart(service)
        rig.note(f"restarted {service}")
        return proof
    if kind == "pg_restart":
        assert rig.postgres is not None, "pg_restart needs the rig's private PostgreSQL"
        rig.postgres.stop()
        rig.note("postgres stopped")
        await asyncio.sleep(3)
        await asyncio.to_thread(rig.postgres.start)
        rig.note("postgres started")
        return None
    if kind == "broker_pause":
        rig.broker.pause()
        rig.note("broker paused")
        try:
            await asyncio.sleep(10)
        finally:
            rig.broker.resume()
        rig.note("broker resumed")
        return None
    raise ValueError(f"unknown fault {fault!r}")


async def _applied(db: Database) -> int:
    return await db.fetchval("SELECT count(*) FROM inbox WHERE event_type = 'commerce.order.paid'")


async def _more_applied(db: Database, at_least: int) -> bool:
    return await _applied(db) >= at_least


async def committed_offsets(broker: Broker, group: str) -> dict[TopicPartition, int]:
    """The group's committed offsets on every topic it has committed on (read without joining the group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        result = {}
        for tp in (TopicPartition(topic, p) for topic in ALL_TOPICS for p in range(PARTITIONS)):
            offset = await consumer.committed(tp)
            if offset is not None:
                result[tp] = offset
        return result
    finally:
        await consumer.stop()


async def _check_gap_proof(broker: Broker, proof: GapProof) -> None:
    """The self-kill landed between the commits: some event applied then had no committed offset.

    Every topic counts: a profile batch may hold only the loyalty service's events, not orders.
    """
    committed_ids, beyond = set(), set()
    for record in await broker.read_to_end(ALL_TOPICS):  # a topic without a commit yet counts from 0
        event_id = dict(record.headers).get("ce_id", b"").decode()
        tp = TopicPartition(record.topic, record.partition)
        (committed_ids if record.offset < proof.committed.get(tp, 0) else beyond).add(event_id)
    assert (beyond - committed_ids) & proof.applied, (
        f"{proof.service}: no applied event beyond the committed offsets {_short(proof.committed)}")


def _short(offsets: dict[TopicPartition, int]) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}@{offset}" for tp, offset in sorted(offsets.items()))


async def check_end_state(rig: Rig, plan: Plan, offsets: list[tuple[int, int, str]], *,
                          settle_timeout_s: float = 300) -> None:
    profile, loyalty = rig.databases["profile"], rig.databases["loyalty"]
    for service, db in rig.databases.items():
        await wait_until(lambda db=db: _more_applied(db, len(plan.valid_ids)), timeout_s=settle_timeout_s,
                         interval_s=0.25, what=f"{service} applying every valid event")
        rig.note(f"{service} applied every valid event")
        inbox = set(await db.fetch_texts("SELECT event_id FROM inbox WHERE event_type = 'commerce.order.paid'"))
        assert inbox == plan.valid_ids, f"{service}: inbox differs from the valid events"

    # Profile: every order counted once.
    rows = await profile.fetch("SELECT customer_id, order_count FROM customers")
    assert {r["customer_id"]: r["order_count"] for r in rows} == plan.order_count
    rows = await profile.fetch("SELECT customer_id, amount, order_count FROM customer_spend WHERE currency = 'CNY'")
    assert {r["customer_id"]: r["amount"] for r in rows} == plan.spend
    assert {r["customer_id"]: r["order_count"] for r in rows} == plan.order_count
    assert await profile.fetchval("SELECT count(*) FROM orders WHERE status = 'paid'") == len(plan.valid_ids)

    # Loyalty: every order earned once; the cached balances equal the ledger sums.
    earned = await loyalty.fetch("SELECT customer_id, sum(points) AS points, count(*) AS n FROM ledger "
                                 "WHERE kind = 'earn' GROUP BY customer_id")
    expected_earned = {c: plan.pending[c] + plan.available[c] for c in plan.order_count}
    assert {r["customer_id"]: r["points"] for r in earned} == expected_earned
    assert {r["customer_id"]: r["n"] for r in earned} == plan.order_count
    accounts = await loyalty.fetch("SELECT customer_id, tier, available, pending FROM accounts")
    assert {r["customer_id"]: r["pending"] for r in accounts} == plan.pending
    # Churn flags some of these synthetic customers high-risk; loyalty then gives each a win-back
    # bonus, once: the one entry that adds points on top of their orders'.
    bonuses = await loyalty.fetch("SELECT customer_id, sum(points) AS points, count(*) AS n FROM ledger "
                                  "WHERE kind = 'bonus' GROUP BY customer_id")
    twice = [r["customer_id"] for r in bonuses if r["n"] > 1]
    assert not twice, await loyalty.fetch(
        "SELECT customer_id, kind, points, reason, campaign, event_id, business_at FROM ledger "
        "WHERE kind = 'bonus' AND customer_id = ANY($1) ORDER BY customer_id, entry_id LIMIT 8", twice)
    # Besides: earns, and releases of pending points once a return window closed (0 points each).
    assert set(await loyalty.fetch_texts("SELECT DISTINCT kind FROM ledger")) <= {"earn", "release", "bonus"}
    bonus = {r["customer_id"]: r["points"] for r in bonuses}
    available = {r["customer_id"]: r["available"] - bonus.get(r["customer_id"], 0) for r in accounts}
    differing = {c: (available.get(c), plan.available.get(c)) for c in set(available) | set(plan.available)
                 if available.get(c) != plan.available.get(c)}
    assert not differing, f"available (found, expected) differ for {len(differing)}: {list(differing.items())[:5]}"
    assert {r["tier"] for r in accounts} == {"regular"}
    assert await loyalty.fetchval("""
        SELECT count(*) FROM accounts a LEFT JOIN (
            SELECT customer_id, sum(available_delta) AS available, sum(pending_delta) AS pending
            FROM ledger GROUP BY customer_id) l USING (customer_id)
        WHERE a.available <> COALESCE(l.available, 0) OR a.pending <> COALESCE(l.pending, 0)""") == 0
    assert await loyalty.fetchval("SELECT count(*) FROM orders") == len(plan.valid_ids)

    # Churn: every order in the history its features are computed from, once.
    if "churn" in rig.databases:
        rows = await rig.databases["churn"].fetch(
            "SELECT customer_id, count(*) AS n, sum(total_amount) AS spend FROM churn_orders GROUP BY customer_id")
        assert {r["customer_id"]: r["n"] for r in rows} == plan.order_count
        assert {r["customer_id"]: r["spend"] for r in rows} == plan.spend

    # No consumer stuck: each service's lag is 0 on every partition it holds.
    for service, process in rig.services.items():
        await wait_until(lambda p=process: _lag_zero(p), timeout_s=60, interval_s=0.5,
                         what=f"{service}'s consumer lag back to 0")

    rig.note("lag 0 everywhere")
    # Dead letters: exactly the poison records, with the reason expected for each. A dead letter is
    # sent before the offset commit, so a crash in between may send one twice (at least once).
    for service in rig.databases:
        # Lag 0 means every record was processed, and a dead letter is acknowledged before its
        # record counts as processed: the topic's end is final.
        records = await rig.broker.read_to_end([dead_letter_topic(TOPIC_ORDERS, rig.group(service))])
        found: dict[str, str] = {}
        origins = set()
        for record in records:
            headers = {k: v.decode() for k, v in record.headers}
            assert headers["dlq.original.topic"] == TOPIC_ORDERS
            found[headers["ce_id"]] = headers["dlq.reason"]
            origins.add((int(headers["dlq.original.partition"]), int(headers["dlq.original.offset"])))
        assert found == plan.poison, f"{service}: dead letters differ from the poison records"
        assert origins == {(p, o) for p, o, eid in offsets if eid in plan.poison}, f"{service}: dead-letter origins"
        rig.note(f"{service}: {len(records)} dead letters for {len(plan.poison)} poison records")


async def _lag_zero(process: ServiceProcess) -> bool:
    """Every partition of the orders topic has a lag series (the consumer holds them all) at 0."""
    try:
        async with process.client() as http:
            text = (await http.get("/metrics")).text
    except Exception:  # restarting: not answering yet
        return False
    lags = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("crm_consumer_lag_records{") and f'topic="{TOPIC_ORDERS}"' in line]
    return len(lags) == PARTITIONS and sum(lags) == 0
