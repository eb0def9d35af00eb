"""Prometheus metrics: one registry per app, built in the lifespan (never a module global).

HTTP metrics use the OpenTelemetry semantic-convention names and labels
(``http.server.request.duration`` → ``http_server_request_duration_seconds``).

Two kinds of series, and how to aggregate them over replicas (docs/operations.md, "Metrics"):

- **per process** (HTTP, consumer, outbox relay, pool): each replica counts what it did itself;
  ``sum`` over replicas is the service's total.
- **database-wide** (the business series: points, tickets, churn levels, customers): read from
  the service's database, so every replica would report the same figure. Only one replica exports
  them, the holder of a PostgreSQL advisory lock (:class:`ExporterElection`), so ``sum`` over
  replicas is the figure itself, never a multiple of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm_shared.logging import get_logger

log = get_logger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ServiceMetrics:
    def __init__(self, service_name: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.info = Gauge("crm_service_info", "Always 1; labels name the service.", ["service"], registry=r)
        self.info.labels(service_name).set(1)

        self.http_duration = Histogram(
            "http_server_request_duration", "Duration of HTTP server requests.",
            ["http_request_method", "http_route", "http_response_status_code"],
            unit="seconds", buckets=_LATENCY_BUCKETS, registry=r)
        self.http_active = Gauge(
            "http_server_active_requests", "Number of active HTTP server requests.",
            ["http_request_method"], registry=r)

        self.consumer_lag = Gauge(
            "crm_consumer_lag", "Records behind the partition's high watermark, for the partitions this "
            "process is assigned now (a revoked partition's series is removed).",
            ["group", "topic", "partition"], unit="records", registry=r)
        self.events_applied = Counter(
            "crm_events_applied", "Events applied by a consumer.", ["type"], registry=r)
        self.events_duplicate = Counter(
            "crm_events_duplicate", "Redelivered events skipped by the inbox.", ["type"], registry=r)
        self.events_ignored = Counter(
            "crm_events_ignored", "Valid events this service has no handler for.", ["type"], registry=r)
        self.events_dead_lettered = Counter(
            "crm_events_dead_lettered", "Records sent to a dead-letter topic.", ["topic", "reason"],
            registry=r)
        self.consumer_retries = Counter(
            "crm_consumer_retries", "Batch attempts retried after a transient failure.", registry=r)
        self.consumer_batch_duration = Histogram(
            "crm_consumer_batch_duration", "Time to apply one batch, database commit included.",
            unit="seconds", buckets=_LATENCY_BUCKETS, registry=r)
        self.consumer_batch_size = Histogram(
            "crm_consumer_batch_size", "Records per applied batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000), registry=r)

        self.outbox_backlog = Gauge(
            "crm_outbox_backlog", "Outbox rows waiting to be published (the whole table: the same on every "
            "replica, aggregate with max).", unit="rows", registry=r)
        self.outbox_published = Counter(
            "crm_outbox_published", "Outbox events published to Kafka.", ["topic"], registry=r)
        self.outbox_failures = Counter(
            "crm_outbox_publish_failures", "Outbox publish attempts that failed and will be retried.",
            registry=r)


class DatabasePoolMetrics(Collector):
    """The connection pool read at scrape time: connections in use, idle, and the most it may open.

    ``in_use / max`` near 1 means requests queue for a connection (the request gate in db.py holds
    them in FIFO order) or the consumer waits: the "DB connection saturation" alert.
    """

    def __init__(self, engine: AsyncEngine, max_connections: int, registry: CollectorRegistry) -> None:
        self._pool = engine.sync_engine.pool
        self._max = max_connections
        registry.register(self)

    def collect(self):
        connections = GaugeMetricFamily("crm_db_pool_connections", "Database connections of this process by state.",
                                        labels=["state"])
        connections.add_metric(["in_use"], self._pool.checkedout())
        connections.add_metric(["idle"], self._pool.checkedin())
        yield connections
        yield GaugeMetricFamily("crm_db_pool_max_connections",
                                "The most connections the pool may open (its size plus its overflow).",
                                value=self._max)


# The key of the exporter's advisory lock, in each service's own database.
_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('crm-metrics-exporter', 0))"


class ExporterElection:
    """Which replica of a service exports its database-wide series: the one holding a session-level
    PostgreSQL advisory lock on a connection of its own (outside the pool).

    Exactly one exporter at a time, also across a failover, by a lease measured on each replica's
    own monotonic clock (no clock is compared between machines):

    - :meth:`lease` asks PostgreSQL first. A snapshot read after it may be served until the moment
      the question was *sent* plus ``lease_s``: the lock was held when PostgreSQL answered, so it was
      still held at the sending moment, and the old holder stops serving at most ``lease_s`` after
      the last moment it knew it held the lock.
    - A replica that has just acquired the lock serves nothing for ``lease_s`` after acquiring it:
      by then the previous holder's last snapshot has expired.

    So there is a gap of up to ``lease_s`` plus one refresh at a failover, and never an overlap.
    ``lease_s`` must be the same on every replica (it derives from ``METRICS_REFRESH_S``). The
    lock needs a real session, never a transaction-mode pooler (``DATABASE_SESSION_URL``).
    """

    def __init__(self, dsn: str, *, lease_s: float, clock: Callable[[], float] = time.monotonic,
                 timeout_s: float = 5.0) -> None:
        self._dsn = dsn
        self._lease_s = lease_s
        self._clock = clock
        self._timeout_s = timeout_s
        self._conn: asyncpg.Connection | None = None
        self._held_since: float | None = None
        self._asking = asyncio.Lock()  # one question at a time on the lock's connection

    async def lease(self) -> float | None:
        """Until when (this clock) a snapshot read from now on may be served; None: serve nothing."""
        async with self._asking:
            return await self._ask()

    async def _ask(self) -> float | None:
        sent = self._clock()
        if self._conn is not None and self._conn.is_closed():
            self._lost("the session was closed")
            self._conn = None
        try:
            if self._conn is None:
                self._conn = await asyncpg.connect(self._dsn, timeout=self._timeout_s)
            if self._held_since is None:
                if not await self._conn.fetchval(_TRY_LOCK, timeout=self._timeout_s):
                    return None
                self._held_since = self._clock()
                log.info("this replica exports the database-wide metrics")
            else:  # a session lock lasts as long as its session: an answer proves both
                await self._conn.fetchval("SELECT 1", timeout=self._timeout_s)
        except Exception as exc:  # whatever broke, this session's lock can no longer be trusted
            self._lost(repr(exc))
            await self.close()
            return None
        if self._clock() - self._held_since < self._lease_s:
            return None  # the previous holder's last snapshot may still be served
        return sent + self._lease_s

    def _lost(self, why: str) -> None:
        if self._held_since is not None:
            log.warning("lost the metrics exporter lock; exporting no database-wide metrics", error=why)
        self._held_since = None

    async def __aenter__(self) -> ExporterElection:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()  # the lock goes with the session: another replica takes over

    async def close(self) -> None:
        conn, self._conn, self._held_since = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), self._timeout_s)


class DatabaseWideMetrics(Collector):
    """A service's database-wide series: a snapshot read every ``METRICS_REFRESH_S`` by the elected
    replica only, served at scrape time while its lease lasts. Subclasses say what to read
    (:meth:`read`) and how it looks (:meth:`families`); :meth:`process_families` are this process's
    own series, exported by every replica."""

    def __init__(self, registry: CollectorRegistry, election: ExporterElection,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._election = election
        self._clock = clock
        self._served: tuple[Any, float] | None = None  # (snapshot, served until): replaced as one
        registry.register(self)

    @abstractmethod
    async def read(self, db: AsyncConnection) -> Any:
        """The snapshot: what this service reads from its database (one connection, no writes)."""

    @abstractmethod
    def families(self, snapshot: Any) -> Iterator[Metric]:
        """The series of a snapshot, as Prometheus metric families."""

    def process_families(self) -> Iterator[Metric]:
        return iter(())

    async def refresh(self, engine: AsyncEngine) -> None:
        until = await self._election.lease()
        if until is None:
            self._served = None
            return
        async with engine.connect() as db:
            snapshot = await self.read(db)
        self._served = (snapshot, until)

    def collect(self) -> Iterator[Metric]:
        yield from self.process_families()
        served = self._served
        exporting = served is not None and self._clock() < served[1]
        exporter = GaugeMetricFamily("crm_metrics_exporter", "1 on the one replica that exports the service's "
                                     "database-wide series now, 0 on the others.")
        exporter.add_metric([], 1 if exporting else 0)
        yield exporter
        if exporting:
            yield from self.families(served[0])
