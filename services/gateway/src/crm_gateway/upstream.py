"""Calls to the four services: pooled keep-alive connections, deadlines, safe retries, breakers.

The client is aiohttp, not httpx: with a pooled keep-alive connection, httpx added several times
aiohttp's cost to every proxied request (bench/gateway.py; figures in docs/benchmarks.md), and the
gateway's budget is a few tenths of a millisecond.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker
from crm_shared.problems import Problem

from crm_gateway.metrics import GatewayMetrics
from crm_gateway.settings import GatewaySettings

# Connection-level headers are for one hop only (RFC 9110 §7.6.1); the rest pass through.
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
                        b"te", b"trailer", b"transfer-encoding", b"upgrade", b"content-length"})
# Set by the gateway's own middleware on the way out; the upstream's copies would duplicate them.
OWN_RESPONSE_HEADERS = frozenset({b"x-request-id", b"traceparent", b"date", b"server"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})
# Pause before each extra attempt (at most five, see settings), short: the caller is waiting.
RETRY_BACKOFF_S = (0.01, 0.03, 0.06, 0.1, 0.1)
_BREAKER_STATE_VALUE = {STATE_CLOSED: 0, STATE_HALF_OPEN: 1, STATE_OPEN: 2}


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class UpstreamFailed(Exception):
    """A call that counts against the upstream's circuit breaker."""

    def __init__(self, reason: str, *, sent: bool, response: UpstreamResponse | None = None) -> None:
        super().__init__(reason)
        self.reason = reason          # connect, timeout, broken, status
        self.sent = sent              # the request may have reached the service
        self.response = response      # the 502/503/504 the service answered, if it did


class Upstream:
    """One service behind the gateway."""

    def __init__(self, name: str, base_url: str, session: aiohttp.ClientSession, settings: GatewaySettings,
                 metrics: GatewayMetrics) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._connect_timeout = settings.upstream_connect_timeout_s
        self._retries = settings.upstream_retries
        self._metrics = metrics
        self.breaker = CircuitBreaker(failure_threshold=settings.breaker_failure_threshold,
                                      recovery_timeout=settings.breaker_recovery_s,
                                      expected_exception=UpstreamFailed, name=f"upstream-{name}")
        metrics.breaker_state.labels(name).set_function(lambda: _BREAKER_STATE_VALUE[self.breaker.state])

    async def request(self, method: str, target: str, *, headers: list[tuple[str, str]] | None = None,
                      body: bytes = b"", timeout_s: float, idempotent: bool, route: str) -> UpstreamResponse:
        """Send one request within ``timeout_s`` (all attempts together) and return the answer.

        A request that never left (connection refused, breaker) may be retried whatever its
        method; one that may have reached the service only if the method is idempotent: a POST
        that timed out may have been applied, and sending it again could apply it twice.
        """
        deadline = time.monotonic() + timeout_s
        started = time.perf_counter()
        outcome = "error"
        try:
            # A plain loop, not stamina: building tenacity's retry state for every proxied call
            # was a large share of the gateway's CPU (py-spy, docs/benchmarks.md), for a loop this small.
            attempt = 0
            while True:
                try:
                    response = await self._attempt(method, target, headers, body, deadline)
                    break
                except UpstreamFailed as failure:
                    retry = (attempt < self._retries and failure.reason != "circuit open"
                             and (idempotent or not failure.sent)
                             and deadline - time.monotonic() > RETRY_BACKOFF_S[attempt])
                    if not retry:
                        raise
                    self._metrics.upstream_retries.labels(self.name).inc()
                    await asyncio.sleep(RETRY_BACKOFF_S[attempt])
                    attempt += 1
            outcome = str(response.status)
            return response
        except UpstreamFailed as failure:
            outcome = failure.reason
            if failure.response is not None:
                return failure.response  # the service's own 502/503/504, passed on unchanged
            raise self._problem(failure) from None
        finally:
            self._metrics.upstream_duration.labels(self.name, route, outcome).observe(time.perf_counter() - started)

    async def _attempt(self, method: str, target: str, headers, body: bytes, deadline: float) -> UpstreamResponse:
        if self.breaker.opened:
            raise UpstreamFailed("circuit open", sent=False)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamFailed("timeout", sent=False)
        with self.breaker:  # counts UpstreamFailed; any answer below 502 closes it again
            try:
                async with self._session.request(
                        method, self.base_url + target, headers=headers, data=body or None, allow_redirects=False,
                        timeout=aiohttp.ClientTimeout(total=remaining, connect=min(remaining, self._connect_timeout)),
                ) as answer:
                    payload = await answer.read()
                    response = UpstreamResponse(answer.status, answer.raw_headers, payload)
            except aiohttp.ClientConnectorError:
                raise UpstreamFailed("connect", sent=False) from None
            except TimeoutError:
                raise UpstreamFailed("timeout", sent=True) from None
            except aiohttp.ClientError:
                raise UpstreamFailed("broken", sent=True) from None
            if response.status in RETRYABLE_STATUSES:
                raise UpstreamFailed("status", sent=True, response=response)
            return response

    def _problem(self, failure: UpstreamFailed) -> Problem:
        if failure.reason == "timeout":
            return Problem(504, "Gateway Timeout", f"the {self.name} service did not answer in time",
                           upstream=self.name)
        if failure.reason == "circuit open":
            return Problem(503, "Service Unavailable",
                           f"the {self.name} service is failing; calls are paused for a few seconds",
                           upstream=self.name, retry_after=max(1, int(self.breaker.open_remaining)))
        return Problem(502, "Bad Gateway", f"the {self.name} service could not be reached", upstream=self.name)

    async def probe(self) -> bool:
        """Readiness of the service (its /readyz), for the gateway's own /readyz."""
        try:
            async with self._session.get(self.base_url + "/readyz", timeout=aiohttp.ClientTimeout(total=1.0)) as r:
                ok = r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        self._metrics.upstream_up.labels(self.name).set(1 if ok else 0)
        return ok


def new_session(settings: GatewaySettings) -> aiohttp.ClientSession:
    """One pooled client for all upstreams. Idle connections are dropped after 60 s, before the
    services' 75 s keep-alive timeout, so a connection the server is closing is never reused."""
    connector = aiohttp.TCPConnector(limit=settings.upstream_pool_size, limit_per_host=settings.upstream_pool_size,
                                     keepalive_timeout=60, ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                                 skip_auto_headers=("User-Agent",))


def response_headers(upstream: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower(), v) for k, v in upstream
            if k.lower() not in HOP_BY_HOP and k.lower() not in OWN_RESPONSE_HEADERS]


async def close_session(session: aiohttp.ClientSession) -> None:
    await session.close()
    await asyncio.sleep(0)  # let aiohttp close its transports before the loop goes away
