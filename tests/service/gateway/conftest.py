"""The gateway in front of real service processes, on the real PostgreSQL and broker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from crm_shared.auth import mint_user_token
from crm_shared.devstack import free_port

from tests.harness.infra import Database, ServiceProcess

TEST_JWT_SECRET = "test-jwt-secret-of-the-identity-provider-0123456789"
UPSTREAMS = ("profile", "loyalty", "tickets", "churn")


# Modules mint their headers once, at collection, and a whole run lasts well over ten minutes: the
# default lifetime must outlast the session, or the last modules to run meet expired tokens. The
# expiry tests pass their own ttl_s.
SESSION_TTL_S = 6 * 3600


def token(role: str, sub: str, *, secret: str = TEST_JWT_SECRET, issuer: str = "crm-dev", audience: str = "crm",
          ttl_s: int = SESSION_TTL_S, algorithm: str = "HS256", **claims) -> str:
    return mint_user_token(secret=secret, issuer=issuer, audience=audience, role=role, subject=sub,
                           ttl_s=ttl_s, algorithm=algorithm, **claims)


def bearer(role: str, sub: str, **kw) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, sub, **kw)}"}


@dataclass
class GatewayStack:
    gateway: ServiceProcess
    gateway_database: Database
    upstreams: dict[str, ServiceProcess] = field(default_factory=dict)

    def client(self, headers: dict[str, str] | None = None, timeout: float = 10) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.gateway.url, headers=headers or {}, timeout=timeout)


@pytest.fixture
def gateway_stack(make_database, start_service) -> Callable[..., GatewayStack]:
    """``gateway_stack(upstreams=("profile",), **gateway_env)``: the named services and a gateway
    routing to them; the services not started are unreachable (nothing listens on their port)."""

    def start(upstreams: tuple[str, ...] = UPSTREAMS, **gateway_env: str) -> GatewayStack:
        # The gateway needs only its upstreams' addresses, so all of them start at once.
        databases = {name: make_database(name) for name in (*upstreams, "gateway")}
        ports = {name: free_port() for name in upstreams}
        urls = {f"{name.upper()}_URL": f"http://127.0.0.1:{ports.get(name) or free_port()}" for name in UPSTREAMS}
        env = {"JWT_SECRET": TEST_JWT_SECRET, "BREAKER_RECOVERY_S": "2", **urls, **gateway_env}
        *services, gateway = start_service.together(
            [(name, databases[name], {"HTTP_PORT": str(ports[name])}) for name in upstreams]
            + [("gateway", databases["gateway"], env)])
        return GatewayStack(gateway, databases["gateway"], dict(zip(upstreams, services, strict=True)))

    return start
