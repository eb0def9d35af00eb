"""Profile benchmark: mixed events applied per second, timeline reads, segments on 100,000 customers.

    python bench/profile.py [--events 50000] [--customers 5000] [--rate 200] [--seconds 20] [--base 100000]

(a) publish N mixed events (interactions, orders placed, paid, completed, some refunded) for
    C customers and time until the profile service has applied all of them → events/s;
(b) GET /v1/profiles/{id}/timeline at a fixed rate, open loop (latency from when each request
    was due) → p50/p99;
(c) add a base of B customers with orders, categories and interactions (SQL, straight into the
    service's database), then time a custom segment's definition (evaluated for the whole base),
    the scheduled refresh (RFM for everybody plus every segment) and a page of members.

Uses bench/backbone.py's stack: an embedded PostgreSQL (or DATABASE_URL's server), a fresh Tansu
and the profile service as a process. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_shared.auth import Identity, IdentityCodec, Role  # noqa: E402
from crm_shared.events.catalogue import topic_for  # noqa: E402
from crm_shared.events.envelope import to_kafka  # noqa: E402
from crm_shared.settings import DEV_SECRET  # noqa: E402

from bench.backbone import Phase, postgres_server  # noqa: E402
from bench.stats import quantile  # noqa: E402
from tests.harness.events import interaction, order_event  # noqa: E402

NOW = datetime.now(UTC)
KINDS = ("page_view", "product_view", "search", "cart_add", "email_click")


def mixed_events(count: int, customers: int) -> list:
    """Per customer, in order: interactions, then an order placed, paid and completed; every
    tenth paid order is partly refunded."""
    events = []
    cycle = 0
    while len(events) < count:
        for c in range(customers):
            customer, order = f"m-{c}", f"o-{cycle}-{c}"
            at = NOW - timedelta(days=30 - cycle % 30, minutes=c % 60)
            events += [interaction(customer, kind=KINDS[(cycle + c) % 5], at=at) for _ in range(4)]
            events += [order_event(kind, customer, order, amount=f"{20 + c % 80}.00", at=at + timedelta(minutes=i))
                       for i, kind in enumerate(("placed", "paid", "completed"))]
            if (c + cycle) % 10 == 0:
                events.append(order_event("refunded", customer, order, amount=f"{20 + c % 80}.00",
                                          refund_amount="5.00", at=at + timedelta(hours=1)))
            if len(events) >= count:
                break
        cycle += 1
    return events[:count]


async def publish(phase: Phase, events: list) -> None:
    futures = []
    for event in events:
        key, value, headers = to_kafka(event)
        futures.append(await phase.producer.send(topic_for(event.type), value=value, key=key, headers=headers))
    await asyncio.gather(*futures)


SEED_BASE = """
    INSERT INTO customers (customer_id, order_count, first_order_at, last_order_at, city)
    SELECT 'base-' || i, 1 + i % 7, now() - make_interval(days => 400 - i % 300),
           now() - make_interval(days => i % 365), 'city-' || i % 50
    FROM generate_series(1, $1) AS i;
    INSERT INTO customer_spend (customer_id, currency, amount, order_count)
    SELECT 'base-' || i, 'CNY', 50 + (i * 37) % 5000, 1 + i % 7 FROM generate_series(1, $1) AS i;
    INSERT INTO customer_categories (customer_id, category, quantity, first_bought_at, last_bought_at)
    SELECT 'base-' || i, (ARRAY['tea', 'teaware', 'snacks', 'gifts'])[1 + i % 4], 1 + i % 5,
           now() - make_interval(days => 400 - i % 300), now() - make_interval(days => i % 365)
    FROM generate_series(1, $1) AS i;
    INSERT INTO timeline (customer_id, occurred_at, kind, details, event_id)
    SELECT 'base-' || i, now() - make_interval(days => (i * 7 + j) % 120), 'interaction.product_view', '{}',
           'seed-' || i || '-' || j
    FROM generate_series(1, $1) AS i, generate_series(1, 2) AS j;
    ANALYZE;
"""

SEGMENT_RULE = {"all": [{"bought": {"category": "tea", "within_days": 90}}, {"no_order_within_days": 30},
                        {"field": "activity_30d", "op": ">=", "value": 1}]}


async def main(args: argparse.Namespace) -> dict:

    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-profile-"))
    server_url, postgres = postgres_server(workdir)
    result: dict = {"bench": "profile"}
    try:
        async with Phase(server_url, workdir, noop=False) as phase:
            # (a) mixed events
            events = mixed_events(args.events, args.customers)
            started = time.perf_counter()
            await publish(phase, events)
            await phase.wait_applied(len(events) + 1)
            result["mixed_events"] = len(events)
            result["mixed_events_per_s"] = round(len(events) / (time.perf_counter() - started))
            result["rss_mb_after_mixed"] = round(phase.rss_mb(), 1)

            # (b) timeline reads at a fixed rate
            base_url = f"http://127.0.0.1:{phase.port}"
            agent = {"x-crm-identity": IdentityCodec(DEV_SECRET, ttl_s=7200).encode(
                Identity(subject="agent-bench", role=Role.AGENT), "profile")}
            out = subprocess.run([sys.executable, str(ROOT / "bench" / "gateway.py"), "--client-rate",
                                  f"{base_url}/v1/profiles/m-7/timeline?limit=50", json.dumps(agent),
                                  str(args.rate), str(args.seconds)], capture_output=True, text=True, check=True)
            reads = json.loads(out.stdout)
            result["timeline"] = {"rate_per_s": args.rate, "p50_ms": round(quantile(reads["latencies"], 0.5), 2),
                                  "p99_ms": round(quantile(reads["latencies"], 0.99), 2),
                                  "non_200": reads["failures"]}

            # (c) segments on a base of customers
            started = time.perf_counter()
            await phase.db.execute(SEED_BASE.replace("$1", str(int(args.base))))
            result["base_customers"] = args.base
            result["seed_seconds"] = round(time.perf_counter() - started, 1)
            supervisor = {"x-crm-identity": IdentityCodec(DEV_SECRET, ttl_s=7200).encode(
                Identity(subject="sup-bench", role=Role.SUPERVISOR), "profile")}
            async with httpx.AsyncClient(base_url=base_url, headers=supervisor, timeout=600) as http:
                started = time.perf_counter()
                created = await http.post("/v1/segments", json={"segment_id": "tea-lapsing", "name": "Tea lapsing",
                                                                 "rule": SEGMENT_RULE},
                                          headers={"Idempotency-Key": str(uuid.uuid4())})
                define_s = time.perf_counter() - started
                started = time.perf_counter()
                peak_rss = [phase.rss_mb()]

                async def sample_rss() -> None:  # the service's RSS while it refreshes the whole base
                    while True:
                        peak_rss.append(phase.rss_mb())
                        await asyncio.sleep(0.05)
                sampler = asyncio.create_task(sample_rss())
                refreshed = await http.post("/v1/segments/refresh")
                refresh_s = time.perf_counter() - started
                sampler.cancel()
                page_ms = []
                for _ in range(20):
                    started = time.perf_counter()
                    await http.get("/v1/segments/tea-lapsing/members", params={"limit": 1000})
                    page_ms.append((time.perf_counter() - started) * 1000)
            result["segment"] = {"members": created.json()["members"], "define_seconds": round(define_s, 2),
                                 "refresh_all_seconds": round(refresh_s, 2),
                                 "rfm_scored": refreshed.json()["scored"],
                                 "members_page_1000_p50_ms": round(quantile(page_ms, 0.5), 1),
                                 "rss_mb_peak_during_refresh": round(max(peak_rss), 1)}
            result["rss_mb_after_segments"] = round(phase.rss_mb(), 1)
    finally:
        if postgres is not None:
            postgres.stop()
    result["targets"] = {"mixed events >= 5000/s": result["mixed_events_per_s"] >= 5000}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--base", type=int, default=100_000)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
