"""The gateway in front of real service processes, on the real PostgreSQL and broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web
from crm_shared.auth import IDENTITY_HEADER, Identity, IdentityVerifier, Unauthenticated, identity_key, mint_user_token
from crm_shared.devstack import discover_services, free_port

from tests.harness.infra import TEST_AUTH_SECRET, Database, ServiceProcess

TEST_JWT_SECRET = "test-jwt-secret-of-the-identity-provider-0123456789"
# Every service the gateway routes to; the campaigns service is optional (a deployment, or a
# branch, may not have it): the gateway then answers its routes with 502/503 problem+json.
KNOWN_UPSTREAMS = ("profile", "loyalty", "tickets", "churn", "campaigns")
INSTALLED = frozenset(discover_services())
UPSTREAMS = tuple(name for name in KNOWN_UPSTREAMS if name in INSTALLED)
CAMPAIGNS_INSTALLED = "campaigns" in INSTALLED


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
        urls = {f"{name.upper()}_URL": f"http://127.0.0.1:{ports.get(name) or free_port()}"
                for name in KNOWN_UPSTREAMS}
        env = {"JWT_SECRET": TEST_JWT_SECRET, "BREAKER_RECOVERY_S": "2", **urls, **gateway_env}
        *services, gateway = start_service.together(
            [(name, databases[name], {"HTTP_PORT": str(ports[name])}) for name in upstreams]
            + [("gateway", databases["gateway"], env)])
        return GatewayStack(gateway, databases["gateway"], dict(zip(upstreams, services, strict=True)))

    return start


@dataclass
class Received:
    method: str
    path: str
    query: str
    identity: Identity | None       # verified with the campaigns key; None when none came
    headers: dict[str, str]          # names in lower case


@dataclass
class CampaignsStandIn:
    """What the gateway sends to ``CAMPAIGNS_URL``, seen from the receiving end."""

    url: str
    received: list[Received] = field(default_factory=list)
    contacts: dict[str, list[dict]] = field(default_factory=dict)  # customer id → its campaign contacts
    openapi: dict | None = None  # its /openapi.json; None: 404, as a service without a document

    @property
    def env(self) -> dict[str, str]:
        return {"CAMPAIGNS_URL": self.url}


@pytest.fixture
async def campaigns_stand_in() -> AsyncIterator[CampaignsStandIn]:
    """A stand-in listening where the gateway expects the campaigns service: it records each
    request with the identity forwarded (checked with the campaigns service's own key, as the
    real one would) and answers 200. It observes the gateway's side of the contract (what is
    forwarded, with which identity); the campaigns service's own behaviour is tested in its tests."""
    verifier = IdentityVerifier(identity_key(TEST_AUTH_SECRET, "campaigns"), "campaigns")
    port = free_port()
    stand_in = CampaignsStandIn(f"http://127.0.0.1:{port}")

    async def answer(request: web.Request) -> web.Response:
        token = request.headers.get(IDENTITY_HEADER)
        try:
            identity = verifier.decode(token) if token else None
        except Unauthenticated:
            return web.json_response({"title": "Unauthorized"}, status=401)
        stand_in.received.append(Received(request.method, request.path, request.query_string, identity,
                                          {k.lower(): v for k, v in request.headers.items()}))
        if request.path == "/v1/campaign-contacts":
            return web.json_response({"items": stand_in.contacts.get(request.query.get("customer_id", ""), [])})
        return web.json_response({"ok": True})

    async def ready(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def document(_request: web.Request) -> web.Response:
        return web.json_response(stand_in.openapi) if stand_in.openapi else web.json_response({}, status=404)

    app = web.Application()
    app.router.add_get("/readyz", ready)
    app.router.add_get("/openapi.json", document)
    app.router.add_route("*", "/v1/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield stand_in
    await runner.cleanup()
