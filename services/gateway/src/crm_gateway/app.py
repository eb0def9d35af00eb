"""The gateway's app: its spec and the one place its resources are built."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from crm_shared.auth import IdentityCodec
from crm_shared.service import ServiceRuntime, ServiceSpec, build_app
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from crm_gateway import api, openapi, session_oidc
from crm_gateway import session as session_routes
from crm_gateway.authn import ApiKeyStore, Authenticator, CsrfTokens, TokenVerifier
from crm_gateway.console import routes as console
from crm_gateway.domain.routes import RouteTable
from crm_gateway.handlers import HANDLERS
from crm_gateway.jobs import periodic_jobs
from crm_gateway.metrics import GatewayMetrics
from crm_gateway.proxy import FrontDoor
from crm_gateway.ratelimit import RateLimits
from crm_gateway.repository import GatewayRepository
from crm_gateway.settings import GatewaySettings
from crm_gateway.upstream import Upstream, close_session, new_session

SERVICE = ServiceSpec(
    name="gateway", title="CRM gateway", default_port=8000, settings_class=GatewaySettings,
    app_factory="crm_gateway.app:create_app", migrations="crm_gateway:migrations", handlers=HANDLERS,
    repository=GatewayRepository, jobs=periodic_jobs)


@dataclass
class GatewayResources:
    settings: GatewaySettings
    session: aiohttp.ClientSession
    metrics: GatewayMetrics
    upstreams: dict[str, Upstream]
    authenticator: Authenticator
    rate_limits: RateLimits
    identity_codec: IdentityCodec
    routes: RouteTable = field(default_factory=RouteTable)
    openapi: openapi.MergedOpenApi = field(init=False)

    def __post_init__(self) -> None:
        self.openapi = openapi.MergedOpenApi(self)

    async def readiness(self) -> tuple[dict[str, str], bool]:
        """Each service's readiness. The gateway stays ready while at least one answers: the
        customer 360 degrades part by part, and taking the only entry out of rotation because
        one service is down would turn a partial outage into a full one."""
        names = list(self.upstreams)
        results = await asyncio.gather(*(self.upstreams[n].probe() for n in names))
        checks = {f"upstream:{n}": "ok" if ok else "failed" for n, ok in zip(names, results, strict=True)}
        return checks, any(results)


@asynccontextmanager
async def resources(runtime: ServiceRuntime) -> AsyncIterator[GatewayResources]:
    settings: GatewaySettings = runtime.settings  # type: ignore[assignment]
    session = new_session(settings)
    metrics = GatewayMetrics(runtime.metrics.registry)
    try:
        yield GatewayResources(
            settings=settings, session=session, metrics=metrics,
            upstreams={name: Upstream(name, url, session, settings, metrics)
                       for name, url in settings.upstream_urls.items()},
            authenticator=Authenticator(TokenVerifier(settings, session),
                                        ApiKeyStore(runtime.engine, settings.api_key_cache_s),
                                        CsrfTokens(settings.auth_secret.get_secret_value())),
            rate_limits=RateLimits(settings),
            identity_codec=IdentityCodec(settings.auth_secret.get_secret_value()),
        )
    finally:
        await close_session(session)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    middleware: list[tuple[type, dict]] = [(FrontDoor, {})]
    if settings.cors_origins:
        # Outside the front door, so that refusals (401, 429) carry CORS headers too and a
        # browser app can read them.
        middleware.append((CORSMiddleware, {
            "allow_origins": settings.cors_origins, "allow_credentials": False,
            "allow_methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
            "allow_headers": ["authorization", "content-type", "idempotency-key", "x-request-id", "traceparent",
                              *(["x-api-key"] if settings.cors_allow_api_key else [])],
            "expose_headers": ["x-request-id", "traceparent", "ratelimit-limit", "ratelimit-remaining",
                               "ratelimit-reset", "ratelimit-policy", "retry-after", "location"],
            "max_age": 600}))
    routers = [api.router, session_routes.router, session_oidc.router, openapi.router, console.router]
    return build_app(SERVICE, settings, routers=routers, resources=resources, middleware=middleware, public=True,
                     openapi_url=None,
                     description="The one public entry for storefront and call-centre apps.")
