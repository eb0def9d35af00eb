"""Rate limits per calling client and per customer, with the `limits` library.

Sliding-window counters: smoother than fixed windows (no double burst at a window edge) and
as cheap. Storage is in-process memory by default; with a ``redis://`` URL every gateway
replica shares the counters. Headers follow the IETF RateLimit header draft: ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` (seconds) for the tightest policy, and
``RateLimit-Policy`` describing all of them.

The "client" budget of a person (customer, agent, supervisor) is their own within the app that
holds the token: keyed by the token's ``azp`` and ``sub``, so one shopper who uses theirs up
does not lock every other shopper of the same storefront out. A server-side integration (API
key, service token) has one budget per client. Public routes (nobody authenticated) count
against the calling address's "address" budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from math import floor
from urllib.parse import quote

from crm_shared.auth import Identity, Role
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from crm_gateway.settings import GatewaySettings

Clock = Callable[[], float]  # seconds since the epoch, like time.time


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


class ClockedMemoryStorage(MemoryStorage):
    """The library's in-process storage, its sliding windows placed by an injected clock.

    ``limits`` reads ``time.time()`` itself; the windows are what a test needs to control (a burst
    that straddles a window edge is weighed differently), so the two methods that place them take
    the clock instead. Counters still expire on the wall clock (after twice the window).
    """

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock

    async def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        # limits.aio.storage.MemoryStorage.acquire_sliding_window_entry (5.x), with the clock.
        if amount > limit:
            return False
        now = self._clock()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous_count, previous_ttl, current_count, _ = await self._get_sliding_window_info(
            previous_key, current_key, expiry, now)
        if floor(previous_count * previous_ttl / expiry + current_count) + amount > limit:
            return False
        current_count = await self.incr(current_key, 2 * expiry, amount=amount)
        if floor(previous_count * previous_ttl / expiry + current_count) > limit:
            await self.decr(current_key, amount)  # a concurrent hit took the last place
            return False
        return True

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        now = self._clock()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        return await self._get_sliding_window_info(previous_key, current_key, expiry, now)

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        previous_key, current_key = self.sliding_window_keys(key, expiry, self._clock())
        await self.clear(current_key)
        await self.clear(previous_key)


def clock_from(settings: GatewaySettings) -> Clock:
    """The wall clock, or the instant ``RATE_LIMIT_FROZEN_AT`` names (tests only)."""
    frozen: datetime | None = settings.rate_limit_frozen_at
    if frozen is None:
        return time.time
    instant = frozen.timestamp()
    return lambda: instant


def client_key(identity: Identity) -> tuple[str, ...]:
    """Whose "client" budget a request counts against (parts quoted: ids may hold any character)."""
    if identity.role is Role.SERVICE:
        parts = (str(identity.role), identity.client or identity.subject)
    else:
        parts = (str(identity.role), identity.client or "", identity.subject)
    return tuple(quote(part, safe="") for part in parts)


class RateLimits:
    def __init__(self, settings: GatewaySettings, clock: Clock | None = None) -> None:
        url = settings.rate_limit_storage_url
        self.clock = clock or clock_from(settings)
        if url.startswith("memory://"):
            self.storage: Storage = ClockedMemoryStorage(self.clock)
        else:
            # Redis keeps the windows itself (PTTL on the server), so no clock applies there.
            options = {"implementation": "redispy"} if url.startswith(("redis", "rediss")) else {}
            self.storage = storage_from_string(f"async+{url}", **options)
        self._limiter = SlidingWindowCounterRateLimiter(self.storage)
        self.client_limit: RateLimitItem = parse(settings.rate_limit_client)
        self.customer_limit: RateLimitItem = parse(settings.rate_limit_customer)
        self.address_limit: RateLimitItem = parse(settings.rate_limit_address)
        self.policies = ", ".join(
            f'"{name}";q={item.amount};w={item.get_expiry()}'
            for name, item in (("client", self.client_limit), ("customer", self.customer_limit)))
        self.public_policies = f'"address";q={self.address_limit.amount};w={self.address_limit.get_expiry()}'

    async def check(self, identity: Identity, customer_id: str | None) -> Decision:
        """Count this request against the caller's budget (and the customer's, if it names one)."""
        checks = [("client", self.client_limit, client_key(identity))]
        if customer_id is not None:
            checks.append(("customer", self.customer_limit, (quote(customer_id, safe=""),)))
        return await self._hit(checks)

    async def check_address(self, address: str) -> Decision:
        """Count an unauthenticated request (a public route) against its address's budget."""
        return await self._hit([("address", self.address_limit, (quote(address, safe=""),))])

    async def _hit(self, checks: list[tuple[str, RateLimitItem, tuple[str, ...]]]) -> Decision:
        decisions = []
        for policy, item, key in checks:
            allowed = await self._limiter.hit(item, policy, *key)
            stats = await self._limiter.get_window_stats(item, policy, *key)
            # The library states the reset as a wall-clock moment; the window's own clock may differ.
            reset_s = max(0, math.ceil(stats.reset_time - time.time()))
            decision = Decision(allowed, policy, item.amount, stats.remaining, reset_s)
            if not allowed:
                return decision
            decisions.append(decision)
        return min(decisions, key=lambda d: d.remaining)

    async def reset(self) -> None:
        await self.storage.reset()
