"""Backbone benchmark: how fast the profile consumer applies order events, and with what latency.

    python bench/backbone.py [--events 50000] [--customers 5000] [--rate 200] [--seconds 15]

(a) publish N ``commerce.order.paid`` events and time until the profile service (a real process)
    has applied them all → events/s;
(b) publish at a steady rate and measure each event's publish → applied latency (p50/p99), where
    "applied" is when its inbox row becomes visible (the transaction has committed);
(c) the same consumer with no-op handlers (inbox, parsing, offsets: everything but the profile's
    SQL) as the baseline, measured the same way in the same run → ratio.

Uses an embedded PostgreSQL (or DATABASE_URL's server) and a fresh embedded Tansu per phase.
Prints one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import ClassVar

import asyncpg
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_shared.bus.kafka import ensure_topics, new_producer  # noqa: E402
from crm_shared.devstack import (  # noqa: E402
    EmbeddedBroker,
    EmbeddedPostgres,
    drop_database,
    ensure_database,
    free_port,
    wait_for_port,
    with_database,
)
from crm_shared.events.catalogue import ALL_TOPICS, TOPIC_ORDERS  # noqa: E402
from crm_shared.events.envelope import to_kafka  # noqa: E402
from crm_shared.migrations import upgrade  # noqa: E402

from bench.stats import quantile  # noqa: E402
from tests.harness.events import order_paid  # noqa: E402


def serve_noop() -> None:
    """The profile app with every handler replaced by one that does nothing."""
    import dataclasses

    import uvicorn
    from crm_profile.app import SERVICE
    from crm_shared.service import build_app

    async def noop_handler(_resources, _uow, _events) -> None:
        return None

    settings = SERVICE.settings()
    # No resources and no periodic jobs either: this phase measures the consumer's own cost.
    noop = dataclasses.replace(SERVICE, handlers={t: noop_handler for t in SERVICE.handlers}, jobs=None)
    app = build_app(noop, settings)
    uvicorn.run(app, host="127.0.0.1", port=settings.http_port, log_config=None, loop="uvloop")


def postgres_server(workdir: Path, *, fast: bool = True) -> tuple[str, EmbeddedPostgres | None]:
    """DATABASE_URL's server, or an embedded PostgreSQL under ``workdir`` (stop it when done)."""
    server_url = os.environ.get("DATABASE_URL")
    if server_url:
        return server_url.replace("postgresql+asyncpg://", "postgresql://", 1), None
    postgres = EmbeddedPostgres(workdir / "pg", free_port(), fast=fast).start()
    return postgres.admin_url, postgres


async def start_broker_with_topics(workdir: Path) -> EmbeddedBroker:
    """A fresh embedded Tansu holding every topic of the catalogue (stop it when done)."""
    broker = EmbeddedBroker(free_port(), log_path=workdir / "tansu.log").start()
    try:
        # 4 partitions, as `crm topics` creates them by default: the services never rely on auto-create.
        await ensure_topics(broker.bootstrap_servers, ALL_TOPICS, partitions=4)
    except BaseException:
        broker.stop()  # the caller never got the broker, so it cannot stop it
        raise
    return broker


async def create_migrated_database(server_url: str, database: str, migrations: str) -> str:
    """Create ``database`` on the server and migrate it to the head of ``migrations`` (a service's
    Alembic location, e.g. ``crm_profile:migrations``); returns its URL, in the form the services take."""
    await ensure_database(server_url, database)
    dsn = with_database(server_url, database)
    # Alembic goes through SQLAlchemy, which needs the async driver named in the URL.
    await asyncio.to_thread(upgrade, migrations, dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    return dsn


class Phase:
    """A fresh database, a fresh broker and one service process (the profile service unless a
    subclass names another, its extra settings and its warm-up)."""

    service = "profile"
    extra_env: ClassVar[dict[str, str]] = {"PII_KEY": "YmVuY2gtcGlpLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Ng=="}

    def __init__(self, server_url: str, workdir: Path, noop: bool) -> None:
        self.server_url = server_url
        self.workdir = workdir
        self.noop = noop
        self.db_name = f"bench_{uuid.uuid4().hex[:8]}"
        self.dsn = with_database(server_url, self.db_name)

    async def __aenter__(self) -> Phase:
        await create_migrated_database(self.server_url, self.db_name, f"crm_{self.service}:migrations")
        self.broker = await start_broker_with_topics(self.workdir)
        port = self.port = free_port()
        env = {**os.environ, "DATABASE_URL": self.dsn, "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
               "HTTP_PORT": str(port), "ENVIRONMENT": "test", "LOG_LEVEL": "WARNING",
               "KAFKA_SESSION_TIMEOUT_MS": "2000", "KAFKA_HEARTBEAT_INTERVAL_MS": "500", **self.extra_env}
        command = ([sys.executable, __file__, "--serve-noop"] if self.noop
                   else [sys.executable, "-m", "crm_shared.cli", "serve", self.service])
        self.process = subprocess.Popen(command, env=env, stdout=open(self.workdir / "service.log", "ab"),
                                        stderr=subprocess.STDOUT)
        wait_for_port(port, timeout_s=60, process=self.process)
        self.db = await asyncpg.connect(self.dsn)
        self.producer = new_producer(self.broker.bootstrap_servers, "bench")
        await self.producer.start()
        await self.warm_up()
        return self

    async def warm_up(self) -> None:
        await self.publish([order_paid("warm-up")])  # the consumer has joined and is warm
        await self.wait_applied(1)

    async def __aexit__(self, *exc) -> None:
        await self.producer.stop()
        await self.db.close()
        self.process.terminate()
        self.process.wait(20)
        self.broker.stop()
        await drop_database(self.server_url, self.db_name)

    async def publish(self, events) -> None:
        futures = []
        for event in events:
            key, value, headers = to_kafka(event)
            futures.append(await self.producer.send(TOPIC_ORDERS, value=value, key=key, headers=headers))
        await asyncio.gather(*futures)

    async def applied(self) -> int:
        return await self.db.fetchval("SELECT count(*) FROM inbox")

    async def wait_applied(self, count: int, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while await self.applied() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {await self.applied()} of {count} applied")
            await asyncio.sleep(0.01)

    def rss_mb(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20


async def drain_rate(phase: Phase, events: int, customers: int) -> tuple[float, float]:
    batch = [order_paid(f"b-{i % customers}", amount=f"{10 + i % 90}.{i % 100:02d}") for i in range(events)]
    started = time.perf_counter()
    await phase.publish(batch)
    published = time.perf_counter() - started
    await phase.wait_applied(events + 1)
    return events / (time.perf_counter() - started), published


async def steady_latency(phase: Phase, rate: int, seconds: float, customers: int) -> list[float]:
    sent_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    total = int(rate * seconds)
    done = asyncio.Event()
    await asyncio.sleep(10)  # let the drain phase's inbox rows age out of the watcher's window

    async def watch() -> None:
        watcher = await asyncpg.connect(phase.dsn)
        try:
            while not done.is_set() or any(event_id not in seen_at for event_id in sent_at):
                rows = await watcher.fetch(
                    "SELECT event_id FROM inbox WHERE applied_at > now() - interval '10 seconds'")
                now = time.perf_counter()
                for row in rows:
                    seen_at.setdefault(row["event_id"], now)
                await asyncio.sleep(0.002)
        finally:
            await watcher.close()

    watcher = asyncio.create_task(watch())
    started = time.perf_counter()
    for i in range(total):
        event = order_paid(f"l-{i % customers}")
        due = started + i / rate
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        key, value, headers = to_kafka(event)
        sent_at[event.id] = time.perf_counter()
        await phase.producer.send(TOPIC_ORDERS, value=value, key=key, headers=headers)
    done.set()
    await asyncio.wait_for(watcher, 60)
    return [(seen_at[i] - sent_at[i]) * 1000 for i in sent_at]


async def main(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    server_url, postgres = postgres_server(workdir, fast=False)
    try:
        async with Phase(server_url, workdir, noop=False) as phase:
            profile_rate, publish_s = await drain_rate(phase, args.events, args.customers)
            latencies = await steady_latency(phase, args.rate, args.seconds, args.customers)
            profile_rss = phase.rss_mb()
        async with Phase(server_url, workdir, noop=True) as phase:
            noop_rate, _ = await drain_rate(phase, args.events, args.customers)
    finally:
        if postgres:
            postgres.stop()
    return {
        "bench": "backbone", "events": args.events, "customers": args.customers,
        "profile_events_per_s": round(profile_rate), "noop_events_per_s": round(noop_rate),
        "profile_to_noop_ratio": round(profile_rate / noop_rate, 3), "publish_seconds": round(publish_s, 2),
        "steady_rate_per_s": args.rate, "steady_events": len(latencies),
        "latency_ms_p50": round(quantile(latencies, 0.50), 1),
        "latency_ms_p99": round(quantile(latencies, 0.99), 1),
        "latency_ms_max": round(max(latencies), 1), "profile_rss_mb": round(profile_rss, 1),
        "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded", "broker": "embedded tansu",
    }


if __name__ == "__main__":
    if "--serve-noop" in sys.argv:
        serve_noop()
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--rate", type=int, default=200, help="steady publish rate for the latency phase")
    parser.add_argument("--seconds", type=float, default=15, help="length of the latency phase")
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
