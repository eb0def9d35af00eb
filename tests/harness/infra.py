"""The test harness: real PostgreSQL and a real Kafka-protocol broker, real service processes.

By default an embedded PostgreSQL (once per session) and a fresh Tansu broker (per test) are
started; ``DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS`` name existing servers instead. Each test
gets fresh databases copied from a migrated template, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from crm_shared.auth import IDENTITY_HEADER, Identity, IdentityCodec, Role, identity_key
from crm_shared.bus.kafka import ensure_topics, new_producer
from crm_shared.devstack import free_port, wait_for_port, with_database
from crm_shared.events.catalogue import ALL_TOPICS
from crm_shared.events.envelope import CloudEvent, to_kafka

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[2]

# AUTH_SECRET of every service a test starts: the tests sign forwarded identities with it, as the
# gateway does, to talk to a service directly.
TEST_AUTH_SECRET = "test-auth-secret-for-forwarded-identities-0123456789"
TEST_AGENT = Identity(subject="agent-test", role=Role.AGENT)
# PII_KEY of the profile service in tests (base64 of 32 bytes).
TEST_PII_KEY = "dGVzdC1waWkta2V5LWZvci10aGUtcHJvZmlsZS1zZXJ2aWNl"


_CODEC = IdentityCodec(TEST_AUTH_SECRET)


def identity_headers(identity: Identity = TEST_AGENT, *, service: str) -> dict[str, str]:
    """The identity header the gateway would forward to ``service`` (signed for it alone)."""
    return {IDENTITY_HEADER: _CODEC.encode(identity, service)}


async def wait_until(probe: Callable[[], Awaitable[T]], *, timeout_s: float = 20.0, interval_s: float = 0.05,
                     what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout_s`` (bounded)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last value: {last!r}")


@dataclass
class Broker:
    bootstrap_servers: str
    namespace: str  # unique per test: consumer groups carry it, so an external Kafka is shared safely
    process: subprocess.Popen | None = None  # the embedded broker's process; None for an external Kafka

    def pause(self) -> None:
        """SIGSTOP the embedded broker: it keeps its sockets but answers nothing (a hung broker)."""
        assert self.process is not None, "only an embedded broker can be paused"
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None, "only an embedded broker can be resumed"
        self.process.send_signal(signal.SIGCONT)

    async def create_topics(self, topics=ALL_TOPICS, partitions: int = 4) -> None:
        await ensure_topics(self.bootstrap_servers, topics, partitions=partitions)

    async def producer(self) -> AIOKafkaProducer:
        producer = new_producer(self.bootstrap_servers, "crm-tests")
        await producer.start()
        return producer

    async def publish(self, topic: str, events: list[CloudEvent]) -> None:
        producer = await self.producer()
        try:
            await publish_events(producer, topic, events)
        finally:
            await producer.stop()

    async def read_events(self, topic: str, *, expect: int, timeout_s: float = 20.0) -> list[CloudEvent]:
        """Like :meth:`read_all`, parsed into CloudEvents."""
        from crm_shared.events.envelope import from_kafka
        return [from_kafka(r.value, r.headers) for r in await self.read_all(topic, expect=expect, timeout_s=timeout_s)]

    async def read_to_end(self, topics: list[str] | tuple[str, ...], *, timeout_s: float = 20.0) -> list[Any]:
        """Every record of ``topics`` up to the end they have now (returns at the end, no idle wait)."""
        async with _assigned_reader(self.bootstrap_servers, topics, timeout_s) as (consumer, partitions):
            records: list[Any] = []
            deadline = time.monotonic() + timeout_s
            # end_offsets() answers 1 on Tansu; the high watermark each fetch response carries is right.
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                for recs in batch.values():
                    records.extend(recs)
                if await _at_end(consumer, partitions):
                    return records
                if time.monotonic() > deadline:
                    raise AssertionError(f"could not read {topics} to the end in {timeout_s}s")

    async def events_published_by(self, database: Database, topic: str, *, timeout_s: float = 20.0) -> list[CloudEvent]:
        """Every event on ``topic`` once the service of ``database`` has relayed all its outbox: exact, no
        idle wait (the relay deletes a row only after the broker acknowledged it)."""
        from crm_shared.events.envelope import from_kafka

        async def outbox_empty() -> bool:
            return await database.fetchval("SELECT count(*) FROM outbox") == 0
        await wait_until(outbox_empty, timeout_s=timeout_s, what="the outbox relayed")
        return [from_kafka(r.value, r.headers) for r in await self.read_to_end([topic], timeout_s=timeout_s)]

    async def read_all(self, topic: str, *, expect: int, timeout_s: float = 20.0) -> list[Any]:
        """Read a topic from the start until ``expect`` records arrived (or time runs out)."""
        async with _assigned_reader(self.bootstrap_servers, [topic], timeout_s) as (consumer, _):
            records: list[Any] = []
            deadline = time.monotonic() + timeout_s
            while len(records) < expect and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for recs in batch.values():
                    records.extend(recs)
            return records


@contextlib.asynccontextmanager
async def _assigned_reader(bootstrap_servers: str, topics, timeout_s: float):
    """A consumer assigned every partition of ``topics`` from the start: no group, so no group join
    (Tansu holds a join for at least a second)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=25)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            await consumer.topics()  # fetches the cluster metadata, so partitions_for_topic knows them
            known = {topic: consumer.partitions_for_topic(topic) for topic in topics}
            if all(known.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)  # a topic a service has yet to create
        partitions = [TopicPartition(topic, p) for topic in topics for p in sorted(known[topic] or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        yield consumer, partitions
    finally:
        await consumer.stop()


async def _at_end(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    for tp in partitions:
        end = consumer.highwater(tp)
        if end is None or await consumer.position(tp) < end:
            return False
    return True


async def publish_events(producer: AIOKafkaProducer, topic: str, events: list[CloudEvent]) -> None:
    futures = []
    for event in events:
        key, value, headers = to_kafka(event)
        futures.append(await producer.send(topic, value=value, key=key, headers=headers))
    await asyncio.gather(*futures)


async def publish_raw(broker: Broker, topic: str, key: bytes, value: bytes,
                      headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = await broker.producer()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers or [])
    finally:
        await producer.stop()


@dataclass
class Database:
    url: str  # postgresql+asyncpg://… of this test's own database

    @property
    def dsn(self) -> str:
        return self.url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def fetch(self, query: str, *args) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def fetch_texts(self, query: str, *args) -> list[str]:
        """The first column of every row, as text."""
        return [str(row[0]) for row in await self.fetch(query, *args)]

    async def fetchval(self, query: str, *args) -> Any:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()

    async def execute(self, query: str, *args) -> str:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.execute(query, *args)
        finally:
            await conn.close()


@dataclass
class ServiceProcess:
    """One service run as a real process (``crm serve NAME``), as in production."""

    name: str
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        return self.launch().wait_listening()

    def launch(self) -> ServiceProcess:
        """Start the process and return at once (several launched together start in parallel)."""
        # A fault run's service that must die in the commit gap runs through the harness's entry,
        # which adds the kill; production code has no such hook (tests/harness/commit_gap.py).
        in_the_gap = "HARNESS_KILL_AFTER_DB_COMMIT_BATCHES" in self.env
        entry = "tests.harness.commit_gap" if in_the_gap else "crm_shared.cli"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", entry, "serve", self.name],
                                            cwd=REPO_ROOT if in_the_gap else None,
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_listening(self) -> ServiceProcess:
        wait_for_port(self.port, timeout_s=60, process=self.process)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush, exactly like a crashed container."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: the process holds its sockets but answers nothing (a hung service)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self, identity: Identity | None = TEST_AGENT) -> httpx.AsyncClient:
        """An HTTP client for this service; it forwards ``identity`` as the gateway would."""
        headers = identity_headers(identity, service=self.name) if identity is not None else {}
        return httpx.AsyncClient(base_url=self.url, timeout=10, headers=headers)

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of a Prometheus sample over series matching ``labels``."""
        async with self.client() as http:
            text = (await http.get("/metrics")).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


    async def metric_at_least(self, minimum: float, name: str, **labels: str) -> bool:
        return await self.metric(name, **labels) >= minimum

    async def exporting(self) -> None:
        """Wait until this replica exports the database-wide series (it waits one lease after it
        is elected, see crm_shared.metrics.ExporterElection)."""
        await wait_until(lambda: self.metric_at_least(1, "crm_metrics_exporter"), what="the metrics exporter")


def service_env(name: str, *, database: Database, broker: Broker, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update({
        "SERVICE_NAME": name,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database.url,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "HTTP_PORT": str(port),
        "CONSUMER_GROUP": f"crm-{name}-{broker.namespace}",
        "OUTBOX_POLL_INTERVAL_S": "0.5",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "LOG_LEVEL": "INFO",
        "AUTH_SECRET": TEST_AUTH_SECRET,
        "PII_KEY": TEST_PII_KEY,
        # Tests refresh segments on demand (POST /v1/segments/refresh), never by the clock.
        "SEGMENT_REFRESH_FIRST_DELAY_S": "3600",
        # Loyalty jobs run on demand (POST /v1/loyalty/jobs/{job}?as_of=…), never by the clock.
        "JOBS_FIRST_DELAY_S": "3600",
        "JOBS_ACCEPT_AS_OF": "true",
        "SLA_SCAN_FIRST_DELAY_S": "3600",
        # The churn model is refitted on demand (POST /v1/churn/model/refit), never by the clock.
        "REFIT_FIRST_DELAY_S": "3600",
        "METRICS_REFRESH_S": "0.5",
    })
    env.update(extra)
    return env


# What must never reach a log line: the test secrets, bearer tokens, and the PII the event
# builders put in every registration (tests/harness/events.py).
_NEVER_LOGGED = [
    ("AUTH_SECRET", re.compile(re.escape(TEST_AUTH_SECRET))),
    ("an IDENTITY_KEY", re.compile("|".join(identity_key(TEST_AUTH_SECRET, name)
                                            for name in ("profile", "loyalty", "tickets", "churn", "campaigns")))),
    ("PII_KEY", re.compile(re.escape(TEST_PII_KEY))),
    ("JWT secret", re.compile(r"test-jwt-secret-of-the-identity-provider")),
    ("a bearer token", re.compile(r"eyJ[\w-]{10,}\.eyJ[\w-]{10,}")),
    ("an e-mail address", re.compile(r"[\w.+-]+@example\.com", re.IGNORECASE)),
    ("a phone number", re.compile(r"\+?86 ?138 ?0013 ?8000|13800138000")),
    ("a customer's name", re.compile(r"Test Customer")),
]


def leaks_in(log_text: str) -> list[str]:
    """What a service log shows that it must not: secrets, tokens, test PII (one line each)."""
    found = []
    for line in log_text.splitlines():
        for what, pattern in _NEVER_LOGGED:
            if pattern.search(line):
                found.append(f"{what}: {line[:300]}")
    return found


def structured_line(event: CloudEvent) -> str:
    return orjson.dumps(event.to_structured()).decode()


def database_url_for(server_url: str, name: str) -> str:
    return with_database(server_url, name).replace("postgresql://", "postgresql+asyncpg://", 1)


__all__ = ["TEST_AGENT", "TEST_AUTH_SECRET", "Broker", "Database", "ServiceProcess", "database_url_for",
           "free_port", "identity_headers", "leaks_in", "publish_events", "publish_raw", "service_env",
           "structured_line", "wait_until"]
