"""Rate limits per calling client and per customer, with the `limits` library.

Sliding-window counters: smoother than fixed windows (no double burst at a window edge) and
as cheap. Storage is in-process memory by default; with a ``redis://`` URL every gateway
replica shares the counters. Headers follow the IETF RateLimit header draft: ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` (seconds) for the tightest policy, and
``RateLimit-Policy`` describing all of them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from crm_shared.auth import Identity
from limits import RateLimitItem, parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from crm_gateway.settings import GatewaySettings


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy: str        # the policy that decided: "client" or "customer"
    limit: int
    remaining: int
    reset_s: int

    def headers(self, policies: str) -> list[tuple[bytes, bytes]]:
        headers = [(b"ratelimit-limit", str(self.limit).encode()),
                   (b"ratelimit-remaining", str(self.remaining).encode()),
                   (b"ratelimit-reset", str(self.reset_s).encode()),
                   (b"ratelimit-policy", policies.encode())]
        if not self.allowed:
            headers.append((b"retry-after", str(max(1, self.reset_s)).encode()))
        return headers


class RateLimits:
    def __init__(self, settings: GatewaySettings) -> None:
        url = settings.rate_limit_storage_url
        options = {"implementation": "redispy"} if url.startswith(("redis", "rediss")) else {}
        self.storage = storage_from_string(f"async+{url}", **options)
        self._limiter = SlidingWindowCounterRateLimiter(self.storage)
        self.client_limit: RateLimitItem = parse(settings.rate_limit_client)
        self.customer_limit: RateLimitItem = parse(settings.rate_limit_customer)
        self.policies = ", ".join(
            f'"{name}";q={item.amount};w={item.get_expiry()}'
            for name, item in (("client", self.client_limit), ("customer", self.customer_limit)))

    async def check(self, identity: Identity, customer_id: str | None) -> Decision:
        """Count this request against the caller's budget (and the customer's, if it names one)."""
        checks = [("client", self.client_limit, f"{identity.role}:{identity.client or identity.subject}")]
        if customer_id is not None:
            checks.append(("customer", self.customer_limit, customer_id))
        decisions = []
        for policy, item, key in checks:
            allowed = await self._limiter.hit(item, policy, key)
            stats = await self._limiter.get_window_stats(item, policy, key)
            reset_s = max(0, math.ceil(stats.reset_time - time.time()))
            decision = Decision(allowed, policy, item.amount, stats.remaining, reset_s)
            if not allowed:
                return decision
            decisions.append(decision)
        return min(decisions, key=lambda d: d.remaining)

    async def reset(self) -> None:
        await self.storage.reset()
