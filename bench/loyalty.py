"""Loyalty benchmark: points earned per second against raw batched SQL, and redemption latency.

    python bench/loyalty.py [--orders 50000] [--customers 5000] [--clients 100] [--redemptions 3000]

In one run:

(a) **consumer**: publish N ``commerce.order.paid`` events (1–3 items each, paid within the last
    5 days, so the points stay pending) for C customers and time from the first send until the
    loyalty service (a real process) has applied all of them (its inbox, read from the database)
    → orders/s; also the mean batch the consumer really got and how long its outbox relay took
    to publish the ``crm.loyalty.points.earned`` events afterwards;
(b) **raw SQL baseline**: the same N orders written with asyncpg straight into a fresh, migrated
    loyalty database, in batches of ``--batch`` (the consumer's CONSUMER_BATCH_MAX, 5,000), one
    transaction per batch, issuing the statements the consumer issues (inbox claim, known orders,
    discounts, programme versions, ensure and lock accounts, rolling spend, INSERT orders,
    nextval for lot ids, INSERT lots, INSERT ledger, UPDATE accounts, INSERT outbox) with values
    computed beforehand (points = floor of the amount; no Kafka, no pydantic, no domain code)
    → orders/s, and the ratio consumer / raw (target ≥ 0.5; consumer target ≥ 5,000/s);
(c) **redemptions**: fund R customers with old paid orders (their points are available at once),
    then ``--clients`` concurrent HTTP clients redeem a few points each in a closed loop,
    ``POST /v1/loyalty/accounts/{id}/redemptions`` with a fresh ``Idempotency-Key``, until
    ``--redemptions`` in total, spread over the R customers → p50/p99/max ms, redemptions/s and
    the status counts; then the hot-account case: the same clients all redeeming from ONE account
    (``--hot-redemptions``), where every request waits for that account's row lock. The clients
    are aiohttp (as the gateway's upstream client): httpx costs much more CPU per request (figures
    in docs/benchmarks.md), so 100 httpx clients saturate a core of a 2-core machine and measure
    themselves, not the service (``--http-client httpx`` to compare);
(d) **catalogue**: the same clients redeem one catalogue reward (10 points) for R other members,
    ``POST /v1/loyalty/accounts/{id}/reward-redemptions``, ``--catalogue-redemptions`` each: first a
    stocked reward (every redemption takes its row lock: a popular reward is one hot row), then an
    unlimited one (the members' account locks only) → the same figures;
(e) **coupon validations**: the same clients ask ``POST /v1/coupons/validate`` about one generic
    10%-off code for 3-line carts of 100 different customers, ``--validations`` in all (read-only).

Uses bench/backbone.py's stack: an embedded PostgreSQL (or DATABASE_URL's server), a fresh Tansu
and the loyalty service as a process. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import aiohttp
import asyncpg
import httpx
import orjson
import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_shared.auth import IDENTITY_HEADER, Identity, IdentityCodec, Role  # noqa: E402
from crm_shared.devstack import (  # noqa: E402
    drop_database,
    ensure_database,
    with_database,
)
from crm_shared.migrations import upgrade  # noqa: E402
from crm_shared.settings import DEV_SECRET  # noqa: E402

from bench.backbone import Phase, postgres_server  # noqa: E402
from bench.stats import quantile  # noqa: E402
from tests.harness.events import order_event  # noqa: E402

MIGRATIONS = "crm_loyalty:migrations"
NOW = datetime.now(UTC)
PRODUCTS = [(f"SKU-{n}", category) for n, category in
            enumerate(("tea", "tea", "teaware", "snacks", "gifts", "tea", "snacks", "teaware"))]


class LoyaltyPhase(Phase):
    """bench/backbone.py's Phase (a fresh database, a fresh Tansu, one service process) for the
    loyalty service, with an HTTP client for its API."""

    service = "loyalty"
    # the scheduled jobs would otherwise start a minute in
    extra_env: ClassVar[dict[str, str]] = {"JOBS_FIRST_DELAY_S": "3600"}

    async def warm_up(self) -> None:
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        await self.publish([paid_order("warm-up", "warm-up-1", 1, 0, days_ago=1)])  # joined and warm
        await self.wait_applied(1)

    async def __aexit__(self, *exc) -> None:
        await self.http.aclose()
        await super().__aexit__(*exc)

    async def metric(self, name: str, labels: str = "") -> float:
        """One sample of the service's /metrics (the sum over samples whose labels contain ``labels``)."""
        text = (await self.http.get("/metrics")).text
        pattern = re.compile(rf"^{re.escape(name)}(\{{.*\}})? (\S+)$", re.M)
        return sum(float(m.group(2)) for m in pattern.finditer(text) if labels in (m.group(1) or ""))

    async def applied(self) -> int:
        # From the database, not /metrics: scraping the service 20 times a second took CPU from
        # the very process being measured.
        return await self.db.fetchval("SELECT count(*) FROM inbox WHERE event_type = 'commerce.order.paid'")

    async def wait_applied(self, count: int, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while (done := await self.applied()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done} of {count} applied")
            await asyncio.sleep(0.05)

    async def wait_outbox_empty(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while await self.db.fetchval("SELECT count(*) FROM outbox"):
            if time.monotonic() > deadline:
                raise TimeoutError("the outbox did not drain")
            await asyncio.sleep(0.1)


def paid_order(customer: str, order_id: str, i: int, n_items: int, *, days_ago: float, amount_scale: int = 1):
    """A ``commerce.order.paid`` with 1–3 items (n_items 0–2), paid ``days_ago`` days ago."""
    items = []
    for k in range(n_items + 1):
        sku, category = PRODUCTS[(i + k) % len(PRODUCTS)]
        price = Decimal(10 + (i * 7 + k * 13) % 90) * amount_scale + Decimal((i + k) % 100) / 100
        items.append({"sku": sku, "category": category, "quantity": 1 + (i + k) % 2, "unit_price": str(price)})
    total = sum(Decimal(item["unit_price"]) * item["quantity"] for item in items)
    return order_event("paid", customer, order_id, amount=str(total), items=items,
                       at=NOW - timedelta(days=days_ago, seconds=i % 3600))


def recent_orders(count: int, customers: int, prefix: str) -> list:
    """Paid in the last 5 days: the points stay pending (the return window is 7 days). Amounts
    stay small enough (≈ 10 orders of ≤ 300 per customer) that nobody reaches the next tier."""
    return [paid_order(f"{prefix}-{i % customers}", f"{prefix}-o-{i}", i, i % 3, days_ago=(i % 5000) / 1000)
            for i in range(count)]


# -- (a) the consumer --------------------------------------------------------------------------------

async def consumer_rate(phase: LoyaltyPhase, events: list) -> dict:
    names = ("crm_consumer_batch_size_count", "crm_consumer_batch_size_sum",
             "crm_consumer_batch_duration_seconds_sum", "crm_outbox_published_total",
             "crm_events_dead_lettered_total")
    before = {name: await phase.metric(name) for name in names}
    applied_before = await phase.applied()
    started = time.perf_counter()
    await phase.publish(events)
    published = time.perf_counter() - started
    await phase.wait_applied(applied_before + len(events))
    elapsed = time.perf_counter() - started
    rss = phase.rss_mb()
    drain_started = time.perf_counter()
    await phase.wait_outbox_empty()
    drained = time.perf_counter() - drain_started
    await asyncio.sleep(0.5)  # the relay counts what it published after deleting the rows
    delta = {name: await phase.metric(name) - before[name] for name in names}
    batches = delta["crm_consumer_batch_size_count"]
    tiers = await phase.db.fetchval("SELECT count(*) FROM accounts WHERE tier <> 'regular'")
    return {"orders_per_s": round(len(events) / elapsed), "seconds": round(elapsed, 2),
            "publish_seconds": round(published, 2), "batches": int(batches),
            "mean_batch": round(delta["crm_consumer_batch_size_sum"] / batches) if batches else None,
            "in_batches_seconds": round(delta["crm_consumer_batch_duration_seconds_sum"], 2),
            "outbox_events": int(delta["crm_outbox_published_total"]),
            "outbox_drain_after_s": round(drained, 2), "dead_lettered": int(delta["crm_events_dead_lettered_total"]),
            "members_above_entry_tier": tiers, "rss_mb": round(rss, 1)}


# -- (b) the raw SQL baseline ------------------------------------------------------------------------

RAW_SQL = {
    "inbox": """
        INSERT INTO inbox (source, event_id, event_type)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
        ON CONFLICT DO NOTHING RETURNING source, event_id""",
    "known": "SELECT order_id FROM orders WHERE order_id = ANY($1::text[])",
    "discounts": """
        SELECT order_id, sum(money_value) AS value FROM redemptions
        WHERE order_id = ANY($1::text[]) AND kind = 'order_discount' GROUP BY order_id""",
    "versions": "SELECT version, effective_from FROM programme_versions ORDER BY version",
    "ensure": """
        INSERT INTO accounts (customer_id, tier, tier_since)
        SELECT customer_id, $2, $3 FROM unnest($1::text[]) AS t(customer_id)
        ON CONFLICT (customer_id) DO NOTHING""",
    "lock": """
        SELECT customer_id, tier, tier_since, below_tier_since, available, pending, debt, lifetime_earned,
               birthday, birthday_bonus_year, erased_at
        FROM accounts WHERE customer_id = ANY($1::text[])
        ORDER BY customer_id FOR UPDATE""",
    "rolling": """
        SELECT customer_id, COALESCE(sum(total_amount - refunded_amount), 0) AS spend,
               count(*) FILTER (WHERE refunded_amount < total_amount) AS orders
        FROM orders
        WHERE customer_id = ANY($1::text[]) AND currency = $2 AND paid_at IS NOT NULL
          AND status <> 'cancelled' AND paid_at > $3 AND paid_at <= $4
        GROUP BY customer_id""",
    "orders": """
        INSERT INTO orders (order_id, customer_id, status, currency, total_amount, points_value, paid_at,
                            earned_points, lines, programme_version, tier)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::numeric[],
                             $7::timestamptz[], $8::bigint[], $9::jsonb[], $10::integer[], $11::text[])
        ON CONFLICT (order_id) DO NOTHING""",
    "lot_ids": "SELECT nextval('lots_lot_id_seq') FROM generate_series(1, $1)",
    "lots": """
        INSERT INTO lots (lot_id, customer_id, kind, order_id, points, remaining, state, business_at,
                          available_at, expires_at)
        SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                             $7::text[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[])""",
    "ledger": """
        INSERT INTO ledger (customer_id, kind, points, available_delta, pending_delta, debt_delta, reason,
                            order_id, redemption_id, lot_id, actor, ticket_id, campaign, event_id, business_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                             $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[],
                             $13::text[], $14::text[], $15::timestamptz[])""",
    "accounts": """
        UPDATE accounts a SET available = t.available, pending = t.pending, debt = t.debt,
                              lifetime_earned = t.lifetime_earned, tier = t.tier, tier_since = t.tier_since,
                              below_tier_since = t.below_tier_since, birthday_bonus_year = t.birthday_bonus_year,
                              updated_at = now()
        FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[],
                    $7::timestamptz[], $8::timestamptz[], $9::integer[])
             AS t(customer_id, available, pending, debt, lifetime_earned, tier, tier_since, below_tier_since,
                  birthday_bonus_year)
        WHERE a.customer_id = t.customer_id""",
    "outbox": """
        INSERT INTO outbox (event_id, event_type, topic, key, value, headers)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::bytea[])""",
}


def raw_rows(events: list) -> list[dict]:
    """Everything the statements need, per order, computed before the clock starts."""
    rows = []
    for event in events:
        data = event.data
        at = datetime.fromisoformat(data["occurred_at"])
        lines = [{"sku": item["sku"], "category": item["category"], "quantity": item["quantity"],
                  "value": str(Decimal(item["unit_price"]) * item["quantity"]),
                  "points": int(Decimal(item["unit_price"]) * item["quantity"]), "refunded_qty": 0}
                 for item in data["items"]]
        points = int(Decimal(data["total_amount"]))
        out_id = str(uuid.uuid4())
        value = orjson.dumps({"customer_id": data["customer_id"], "kind": "earn", "points": points,
                              "available": 0, "pending": points, "debt": 0,
                              "reason": f"order {data['order_id']} paid", "occurred_at": data["occurred_at"],
                              "order_id": data["order_id"]})
        headers = orjson.dumps([["ce_specversion", "1.0"], ["ce_id", out_id], ["ce_source", "crm/loyalty"],
                                ["ce_type", "crm.loyalty.points.earned"], ["content-type", "application/json"],
                                ["ce_time", NOW.isoformat()], ["ce_subject", data["customer_id"]],
                                ["traceparent", f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"]])
        rows.append({"source": event.source, "event_id": event.id, "customer_id": data["customer_id"],
                     "order_id": data["order_id"], "currency": data["currency"],
                     "total": Decimal(data["total_amount"]), "at": at, "available_at": at + timedelta(days=7),
                     "points": points, "lines": orjson.dumps(lines).decode(), "out_id": out_id,
                     "out_key": data["customer_id"].encode(), "out_value": value, "out_headers": headers})
    return rows


async def raw_batch(conn: asyncpg.Connection, st: dict, batch: list[dict]) -> None:
    """One consumer batch of paid orders, the consumer's statements in the consumer's order."""
    now = datetime.now(UTC)
    async with conn.transaction():
        await st["inbox"].fetch([r["source"] for r in batch], [r["event_id"] for r in batch],
                                ["commerce.order.paid"] * len(batch))
        order_ids = [r["order_id"] for r in batch]
        await st["known"].fetch(order_ids)
        await st["discounts"].fetch(order_ids)
        await st["versions"].fetch()
        customers = sorted({r["customer_id"] for r in batch})
        await st["ensure"].fetch(customers, "regular", now)
        accounts = {row["customer_id"]: row for row in await st["lock"].fetch(customers)}
        until = max(now, max(r["at"] for r in batch))
        await st["rolling"].fetch(customers, "CNY", until - timedelta(days=365), until)
        n = len(batch)
        await st["orders"].fetch(order_ids, [r["customer_id"] for r in batch], ["paid"] * n, ["CNY"] * n,
                                 [r["total"] for r in batch], [Decimal(0)] * n, [r["at"] for r in batch],
                                 [r["points"] for r in batch], [r["lines"] for r in batch], [1] * n,
                                 ["regular"] * n)
        lot_ids = [row[0] for row in await st["lot_ids"].fetch(n)]
        await st["lots"].fetch(lot_ids, [r["customer_id"] for r in batch], ["earn"] * n, order_ids,
                               [r["points"] for r in batch], [r["points"] for r in batch], ["pending"] * n,
                               [r["at"] for r in batch], [r["available_at"] for r in batch], [None] * n)
        await st["ledger"].fetch([r["customer_id"] for r in batch], ["earn"] * n, [r["points"] for r in batch],
                                 [0] * n, [r["points"] for r in batch], [0] * n,
                                 [f"order {r['order_id']} paid" for r in batch], order_ids, [None] * n, lot_ids,
                                 [None] * n, [None] * n, [None] * n, [r["event_id"] for r in batch],
                                 [r["at"] for r in batch])
        earned: dict[str, int] = defaultdict(int)
        for r in batch:
            earned[r["customer_id"]] += r["points"]
        rows = [accounts[c] for c in customers]
        await st["accounts"].fetch(customers, [a["available"] for a in rows],
                                   [a["pending"] + earned[a["customer_id"]] for a in rows],
                                   [a["debt"] for a in rows],
                                   [a["lifetime_earned"] + earned[a["customer_id"]] for a in rows],
                                   [a["tier"] for a in rows], [a["tier_since"] for a in rows],
                                   [a["below_tier_since"] for a in rows], [a["birthday_bonus_year"] for a in rows])
        await st["outbox"].fetch([r["out_id"] for r in batch], ["crm.loyalty.points.earned"] * n,
                                 ["crm.loyalty"] * n, [r["out_key"] for r in batch],
                                 [r["out_value"] for r in batch], [r["out_headers"] for r in batch])


async def raw_rate(server_url: str, service_dsn: str, events: list, batch_size: int) -> dict:
    """The same orders straight into a fresh loyalty database, with asyncpg."""
    rows = raw_rows(events)
    name = f"bench_raw_{uuid.uuid4().hex[:8]}"
    dsn = with_database(server_url, name)
    await ensure_database(server_url, name)
    try:
        await asyncio.to_thread(upgrade, MIGRATIONS, dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
        conn = await asyncpg.connect(dsn)
        try:
            source = await asyncpg.connect(service_dsn)  # the programme version the service seeded
            try:
                version = await source.fetchrow("SELECT * FROM programme_versions WHERE version = 1")
            finally:
                await source.close()
            await conn.execute("INSERT INTO programme_versions (version, config, effective_from, created_by) "
                               "VALUES ($1, $2, $3, $4)", version["version"], version["config"],
                               version["effective_from"], version["created_by"])
            statements = {key: await conn.prepare(sql) for key, sql in RAW_SQL.items()}
            started = time.perf_counter()
            for i in range(0, len(rows), batch_size):
                await raw_batch(conn, statements, rows[i:i + batch_size])
            elapsed = time.perf_counter() - started
            check = await conn.fetchrow("SELECT (SELECT count(*) FROM orders) AS orders, "
                                        "(SELECT count(*) FROM outbox) AS outbox, "
                                        "(SELECT sum(pending) FROM accounts) AS pending")
        finally:
            await conn.close()
    finally:
        await drop_database(server_url, name)
    assert check["orders"] == len(rows) == check["outbox"], dict(check)
    assert check["pending"] == sum(r["points"] for r in rows), dict(check)
    return {"orders_per_s": round(len(rows) / elapsed), "seconds": round(elapsed, 2), "batch": batch_size}


# -- (c) redemptions ---------------------------------------------------------------------------------

async def redeem(phase: LoyaltyPhase, customers: list[str], total: int, clients: int, points: int,
                 http_client: str = "aiohttp") -> dict:
    """Points redemptions (gifts), request k from customers[k % len(customers)]."""
    body = orjson.dumps({"points": points, "kind": "gift", "gift_sku": "MUG-1"})
    return await closed_loop(phase, lambda k: (f"/v1/loyalty/accounts/{customers[k % len(customers)]}/redemptions",
                                               body),
                             total, clients, "/v1/loyalty/accounts/{customer_id}/redemptions",
                             warm_path=lambda k: f"/v1/loyalty/accounts/{customers[k % len(customers)]}",
                             http_client=http_client, extra={"customers": len(customers)})


async def closed_loop(phase: LoyaltyPhase, request_for: Callable[[int], tuple[str, bytes]], total: int,
                      clients: int, route_template: str, *, warm_path: Callable[[int], str],
                      http_client: str = "aiohttp", extra: dict | None = None) -> dict:
    """``clients`` closed-loop clients sharing one pool of ``clients`` keep-alive connections
    POST request k (``request_for(k)``: path and body), each with a fresh Idempotency-Key, until
    ``total`` → latencies, rate, the service's own mean time and the status counts."""
    headers = {IDENTITY_HEADER: IdentityCodec(DEV_SECRET, ttl_s=7200).encode(
        Identity(subject="agent-bench", role=Role.AGENT), "loyalty"), "content-type": "application/json"}
    base_url = f"http://127.0.0.1:{phase.port}"
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    next_index = 0

    if http_client == "httpx":
        session = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120,
                                    limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients))

        async def post(path: str, body: bytes, key: str) -> int:
            return (await session.post(path, content=body, headers={"Idempotency-Key": key})).status_code

        async def get(path: str) -> None:
            await session.get(path)
    else:
        session = aiohttp.ClientSession(base_url, headers=headers, timeout=aiohttp.ClientTimeout(total=120),
                                        connector=aiohttp.TCPConnector(limit=clients))

        async def post(path: str, body: bytes, key: str) -> int:
            async with session.post(path, data=body, headers={"Idempotency-Key": key}) as response:
                await response.read()
                return response.status

        async def get(path: str) -> None:
            async with session.get(path) as response:
                await response.read()

    async def client() -> None:
        nonlocal next_index
        while next_index < total:
            path, body = request_for(next_index)
            next_index += 1
            started = time.perf_counter()
            status = await post(path, body, str(uuid.uuid4()))
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] += 1

    route = f'http_route="{route_template}"'
    served = [await phase.metric(f"http_server_request_duration_seconds_{x}", route) for x in ("sum", "count")]
    async with session:
        # open the connections first
        await asyncio.gather(*(get(warm_path(k)) for k in range(clients)))
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    served = [await phase.metric(f"http_server_request_duration_seconds_{x}", route) - before
              for x, before in zip(("sum", "count"), served, strict=True)]
    return {"requests": len(latencies), **(extra or {}), "clients": clients,
            "per_s": round(len(latencies) / elapsed), "p50_ms": round(quantile(latencies, 0.50), 1),
            "p99_ms": round(quantile(latencies, 0.99), 1), "max_ms": round(max(latencies), 1),
            "mean_ms": round(sum(latencies) / len(latencies), 1),
            "service_mean_ms": round(served[0] / served[1] * 1000, 1) if served[1] else None,
            **{f"status_{code}": statuses[code] for code in (200, 201, 409, 422)},
            "status_5xx": sum(n for s, n in statuses.items() if s >= 500),
            "status_other": sum(n for s, n in statuses.items() if s not in (200, 201, 409, 422) and s < 500)}


def supervisor_headers() -> dict[str, str]:
    return {IDENTITY_HEADER: IdentityCodec(DEV_SECRET, ttl_s=7200).encode(
        Identity(subject="sup-bench", role=Role.SUPERVISOR), "loyalty"), "Idempotency-Key": str(uuid.uuid4())}


async def catalogue_redemptions(phase: LoyaltyPhase, customers: list[str], total: int, clients: int, *,
                                stock: int | None, http_client: str) -> dict:
    """Redemptions of one catalogue reward (10 points, a gift) spread over ``customers``: with
    ``stock`` every redemption takes the reward's row lock (a popular reward is one hot row), with
    None (unlimited) only the member's account lock."""
    reward_id = f"bench-{'stocked' if stock is not None else 'unlimited'}-{uuid.uuid4().hex[:6]}"
    created = await phase.http.post("/v1/loyalty/rewards", headers=supervisor_headers(), json={
        "reward_id": reward_id, "name": "Bench mug", "kind": "gift", "points_price": 10, "sku": "MUG-B",
        "stock": stock})
    assert created.status_code == 201, created.text
    body = orjson.dumps({"reward_id": reward_id})
    result = await closed_loop(
        phase, lambda k: (f"/v1/loyalty/accounts/{customers[k % len(customers)]}/reward-redemptions", body),
        total, clients, "/v1/loyalty/accounts/{customer_id}/reward-redemptions",
        warm_path=lambda k: "/v1/loyalty/rewards", http_client=http_client,
        extra={"customers": len(customers), "stock": stock})
    after = (await phase.http.get(f"/v1/loyalty/rewards/{reward_id}", headers=supervisor_headers())).json()
    result["redeemed_count"] = after["redeemed_count"]
    return result


async def coupon_validations(phase: LoyaltyPhase, total: int, clients: int, *, http_client: str) -> dict:
    """``POST /v1/coupons/validate`` of one generic 10%-off code (min spend 50) for 3-line carts:
    read-only (the pool, the code, the customer's uses), as a storefront asks before checkout."""
    pool_id = f"bench-{uuid.uuid4().hex[:6]}"
    created = await phase.http.post("/v1/loyalty/coupon-pools", headers=supervisor_headers(), json={
        "pool_id": pool_id, "name": "Bench 10% off", "discount_kind": "percent", "percent": "10",
        "min_spend": "50", "currency": "CNY", "per_customer_limit": 1})
    assert created.status_code == 201, created.text
    issued = await phase.http.post(f"/v1/loyalty/coupon-pools/{pool_id}/coupons", headers=supervisor_headers(),
                                   json={"count": 1})
    assert issued.status_code == 201, issued.text
    code = issued.json()["coupons"][0]["code"]
    bodies = [orjson.dumps({"code": code, "customer_id": f"r-{k}", "currency": "CNY", "items": [
        {"sku": sku, "category": category, "quantity": 1 + k % 2, "unit_price": str(20 + k % 30)}
        for sku, category in PRODUCTS[:3]]}) for k in range(100)]
    return await closed_loop(phase, lambda k: ("/v1/coupons/validate", bodies[k % len(bodies)]), total, clients,
                             "/v1/coupons/validate", warm_path=lambda k: "/v1/loyalty/programme",
                             http_client=http_client)


async def fund(phase: LoyaltyPhase, customers: list[str], amount_scale: int) -> None:
    """One paid order each, 30 days old: the return window has closed, the points are available."""
    before = await phase.applied()
    await phase.publish([paid_order(c, f"fund-{c}", i, 2, days_ago=30, amount_scale=amount_scale)
                         for i, c in enumerate(customers)])
    await phase.wait_applied(before + len(customers))
    await phase.wait_outbox_empty()


# -- the run -----------------------------------------------------------------------------------------

async def main(args: argparse.Namespace) -> dict:
    # the shared helpers log through structlog, by default on stdout: keep stdout for the figures
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-loyalty-"))
    server_url, postgres = postgres_server(workdir)
    result: dict = {"bench": "loyalty", "orders": args.orders, "customers": args.customers}
    events = recent_orders(args.orders, args.customers, "c")
    try:
        async with LoyaltyPhase(server_url, workdir, noop=False) as phase:
            result["consumer"] = await consumer_rate(phase, events)
            result["raw_sql"] = await raw_rate(server_url, phase.dsn, events, args.batch)
            result["consumer_to_raw_ratio"] = round(result["consumer"]["orders_per_s"]
                                                    / result["raw_sql"]["orders_per_s"], 3)

            spread = [f"r-{i}" for i in range(args.redeemers)]
            await fund(phase, spread, amount_scale=1)  # 40–300 points each; 3 redemptions of 5 take 15
            await fund(phase, ["hot-1"], amount_scale=10)  # ≈ 1,000–3,000 points
            result["redeem_spread"] = await redeem(phase, spread, args.redemptions, args.clients, points=5,
                                                   http_client=args.http_client)
            result["redeem_hot_account"] = await redeem(phase, ["hot-1"], args.hot_redemptions, args.clients,
                                                        points=1, http_client=args.http_client)
            members = [f"k-{i}" for i in range(args.redeemers)]
            await fund(phase, members, amount_scale=2)  # 80–600 points each; 4 redemptions of 10 take 40
            result["catalogue_stocked"] = await catalogue_redemptions(
                phase, members, args.catalogue_redemptions, args.clients, stock=10 * args.catalogue_redemptions,
                http_client=args.http_client)
            result["catalogue_unlimited"] = await catalogue_redemptions(
                phase, members, args.catalogue_redemptions, args.clients, stock=None, http_client=args.http_client)
            result["coupon_validations"] = await coupon_validations(phase, args.validations, args.clients,
                                                                    http_client=args.http_client)
            result["rss_mb_end"] = round(phase.rss_mb(), 1)
    finally:
        if postgres is not None:
            postgres.stop()
    result["database"] = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded"
    result["targets"] = {"consumer >= 5000 orders/s": result["consumer"]["orders_per_s"] >= 5000,
                         "consumer >= 0.5 x raw SQL": result["consumer_to_raw_ratio"] >= 0.5}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--clients", type=int, default=100, help="concurrent HTTP clients for redemptions")
    parser.add_argument("--redemptions", type=int, default=3_000)
    parser.add_argument("--redeemers", type=int, default=1_000, help="customers the redemptions are spread over")
    parser.add_argument("--hot-redemptions", type=int, default=500, help="redemptions from the one hot account")
    parser.add_argument("--catalogue-redemptions", type=int, default=2_000,
                        help="redemptions of one catalogue reward, each run (stocked, then unlimited)")
    parser.add_argument("--validations", type=int, default=5_000, help="coupon validations")
    parser.add_argument("--http-client", choices=("aiohttp", "httpx"), default="aiohttp",
                        help="the load clients' library (httpx needs much more CPU per request: "
                             "with 100 clients it, not the service, is the bottleneck)")
    parser.add_argument("--batch", type=int, default=5_000, help="raw SQL batch (the consumer's CONSUMER_BATCH_MAX)")
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
