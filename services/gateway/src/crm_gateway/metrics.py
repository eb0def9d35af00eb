"""The gateway's own metrics: calls to its upstreams, their breakers and readiness, 429s, events
received over HTTP. No database-wide gauge: the gateway keeps no state worth one."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.upstream_duration = Histogram(
            "crm_gateway_upstream_request_duration_seconds", "Calls from the gateway to a service.",
            ["upstream", "route", "outcome"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.upstream_retries = Counter("crm_gateway_upstream_retries_total",
                                        "Extra attempts of idempotent calls.", ["upstream"], registry=registry)
        self.breaker_state = Gauge("crm_gateway_circuit_state",
                                   "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open.",
                                   ["upstream"], registry=registry)
        self.upstream_up = Gauge("crm_gateway_upstream_up", "1 if the upstream answered its last readiness probe.",
                                 ["upstream"], registry=registry)
        self.rate_limited = Counter("crm_gateway_rate_limited_total", "Requests refused with 429.",
                                    ["policy"], registry=registry)
        self.events_ingested = Counter("crm_gateway_events_total", "Events received over HTTP by outcome.",
                                       ["outcome"], registry=registry)
