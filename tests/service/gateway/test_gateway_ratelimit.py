"""Rate limits per client and per customer: RateLimit headers, then 429 problem+json.

The gateways under test run with their rate limiter's clock frozen (``RATE_LIMIT_FROZEN_AT``) at
10.5 s into a minute, so every request of a test falls in one window whatever the wall clock says,
and the reset is known: 49.5 s left in the window, 50 in whole seconds.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

import pytest
from crm_gateway.ratelimit import RateLimits
from crm_gateway.settings import GatewaySettings
from crm_shared.auth import Identity, Role
from crm_shared.devstack import free_port

from tests.harness.events import new_customer_id
from tests.service.gateway.conftest import bearer

FROZEN_AT = "2026-03-02T09:00:10.500000+00:00"
RESET_S = 50


async def test_a_client_over_its_limit_gets_429_with_headers_and_others_are_unaffected(gateway_stack):
    stack = gateway_stack(upstreams=("profile",), RATE_LIMIT_CLIENT="5/minute", RATE_LIMIT_FROZEN_AT=FROZEN_AT)
    async with stack.client(bearer("agent", "agent-1")) as http:
        answers = [await http.get("/v1/profiles/c-1") for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [404] * 5  # served: nobody is c-1
    assert [int(a.headers["ratelimit-remaining"]) for a in answers[:5]] == [4, 3, 2, 1, 0]
    assert [a.headers["ratelimit-reset"] for a in answers] == [str(RESET_S)] * 6
    limited = answers[5]
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.headers["ratelimit-limit"] == "5" and limited.headers["ratelimit-remaining"] == "0"
    assert limited.headers["retry-after"] == str(RESET_S)
    assert limited.headers["ratelimit-policy"] == '"client";q=5;w=60, "customer";q=300;w=60'
    assert limited.json()["detail"] == f"the client rate limit of 5 requests is used up; retry in {RESET_S} s"
    assert await stack.gateway.metric("crm_gateway_rate_limited_total", policy="client") == 1
    async with stack.client(bearer("agent", "agent-2")) as http:
        assert (await http.get("/v1/profiles/c-1")).status_code == 404


async def test_one_shopper_over_the_limit_does_not_lock_out_the_other_shoppers_of_the_app(gateway_stack):
    """Both shoppers' tokens come from the same storefront app (the same ``azp``): each has a
    budget of their own. Two service tokens of one integration share theirs."""
    stack = gateway_stack(upstreams=("profile",), RATE_LIMIT_CLIENT="3/minute", RATE_LIMIT_FROZEN_AT=FROZEN_AT)
    greedy, other = new_customer_id(), new_customer_id()
    async with stack.client(bearer("customer", greedy, client="storefront")) as http:
        greedy_statuses = [(await http.get(f"/v1/profiles/{greedy}")).status_code for _ in range(4)]
    async with stack.client(bearer("customer", other, client="storefront")) as http:
        other_answer = await http.get(f"/v1/profiles/{other}")
    assert greedy_statuses == [404, 404, 404, 429]  # neither is registered: served, then refused
    assert other_answer.status_code == 404 and other_answer.headers["ratelimit-remaining"] == "2"

    erp_statuses = []
    for subject in ("erp-worker-1", "erp-worker-2", "erp-worker-1", "erp-worker-2"):
        async with stack.client(bearer("service", subject, client="erp", scopes=("profiles:read",))) as http:
            erp_statuses.append((await http.get("/v1/profiles/c-1")).status_code)
    assert erp_statuses == [404, 404, 404, 429]
    assert await stack.gateway.metric("crm_gateway_rate_limited_total", policy="client") == 2


async def test_one_customers_data_has_its_own_limit_across_clients(gateway_stack):
    stack = gateway_stack(upstreams=(), RATE_LIMIT_CUSTOMER="3/minute", RATE_LIMIT_FROZEN_AT=FROZEN_AT)
    statuses = []
    for agent in ("agent-1", "agent-2", "agent-3", "agent-4"):
        async with stack.client(bearer("agent", agent)) as http:
            statuses.append((await http.get("/v1/customers/c-hot")).status_code)
    # No service is up: the 360 answers 200 with every part unavailable, until the customer's budget is used.
    assert statuses == [200, 200, 200, 429]
    assert await stack.gateway.metric("crm_gateway_rate_limited_total", policy="customer") == 1
    async with stack.client(bearer("agent", "agent-5")) as http:
        cold = await http.get("/v1/customers/c-cold")
    assert cold.status_code == 200 and cold.headers["ratelimit-remaining"] == "2"


class SteppedClock:
    def __init__(self, at: str) -> None:
        self.now = datetime.fromisoformat(at).timestamp()

    def __call__(self) -> float:
        return self.now


async def test_the_sliding_window_weighs_the_previous_minute_by_its_share_still_in_the_window():
    """The counter's arithmetic on an injected clock, in-process: three hits at 59.5 s, then the
    next minute begins; at 0.5 s the previous minute still weighs 59.5/60, at 30.5 s about half.
    (A burst that straddled a minute edge on the wall clock once failed a CI run: this is why.)"""
    clock = SteppedClock("2026-03-02T09:00:59.500000+00:00")
    limits = RateLimits(GatewaySettings(rate_limit_client="3/minute"), clock=clock)
    shopper = Identity(subject="c-1", role=Role.CUSTOMER, customer_id="c-1", client="storefront")
    assert [(await limits.check(shopper, None)).allowed for _ in range(4)] == [True, True, True, False]
    clock.now += 1.0  # 09:01:00.5: 3 × 59.5/60 = 2.975 of the previous minute, floored to 2
    assert [(await limits.check(shopper, None)).allowed for _ in range(2)] == [True, False]
    clock.now += 30.0  # 09:01:30.5: 3 × 29.5/60 + this minute's 1 = 2.475, floored to 2
    assert [(await limits.check(shopper, None)).allowed for _ in range(2)] == [True, False]
    clock.now += 60.0  # 09:02:30.5: the previous minute's 2 hits weigh 2 × 29.5/60 = 0.98, floored to 0
    assert [(await limits.check(shopper, None)).allowed for _ in range(4)] == [True, True, True, False]


def test_the_frozen_clock_is_a_test_hook_only():
    assert GatewaySettings(environment="test", rate_limit_frozen_at=FROZEN_AT).rate_limit_frozen_at == \
        datetime(2026, 3, 2, 9, 0, 10, 500_000, tzinfo=UTC)
    for refused in ({"environment": "dev"}, {"environment": "test", "rate_limit_storage_url": "redis://r:6379"}):
        with pytest.raises(ValueError, match="RATE_LIMIT_FROZEN_AT"):
            GatewaySettings(rate_limit_frozen_at=FROZEN_AT, **refused)


def _redis_url() -> str | None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    host, _, port = url.removeprefix("redis://").partition(":")
    try:
        socket.create_connection((host, int(port.split("/")[0] or 6379)), timeout=0.5).close()
    except OSError:
        return None
    return url


@pytest.mark.skipif(_redis_url() is None, reason="needs a Redis server (REDIS_URL or 127.0.0.1:6379)")
async def test_replicas_share_counters_through_redis(make_database, start_service):
    """In Redis a counter's window starts at its first hit (the server's own key expiry), not at a
    minute of the wall clock: a fresh subject's burst of five takes far less than a minute."""
    namespace = f"redis://{_redis_url().removeprefix('redis://')}"
    env = {"RATE_LIMIT_STORAGE_URL": namespace, "RATE_LIMIT_CLIENT": "4/minute",
           # Nothing listens there: each request is a quick 502, never retried, the breaker kept shut.
           "PROFILE_URL": f"http://127.0.0.1:{free_port()}", "UPSTREAM_RETRIES": "0",
           "BREAKER_FAILURE_THRESHOLD": "100",
           "JWT_SECRET": "test-jwt-secret-of-the-identity-provider-0123456789"}
    import httpx
    subject = f"agent-{os.urandom(4).hex()}"  # fresh counters: Redis outlives the test
    one, two = start_service.together([("gateway", make_database("gateway"), env) for _ in range(2)])
    statuses = []
    for replica in (one, two, one, two, one):
        async with httpx.AsyncClient(base_url=replica.url, headers=bearer("agent", subject)) as http:
            statuses.append((await http.get("/v1/profiles/c-1")).status_code)
    assert statuses == [502, 502, 502, 502, 429]

