"""Prometheus metrics: one registry per app, built in the lifespan (never a module global).

HTTP metrics use the OpenTelemetry semantic-convention names and labels
(``http.server.request.duration`` → ``http_server_request_duration_seconds``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

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
            "crm_consumer_lag", "Records behind the partition's high watermark.",
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
            "crm_outbox_backlog", "Outbox rows waiting to be published.", unit="rows", registry=r)
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
