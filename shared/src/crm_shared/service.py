"""What makes every service look the same inside: its spec, its runtime and its app.

A service's ``app.py`` declares a :class:`ServiceSpec` (discovered by the dev runner through the
``crm.services`` entry point) and a ``create_app`` whose lifespan opens a :class:`ServiceRuntime`:
the one place the engine, the Kafka producer, the outbox relay and the consumer are built.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import stamina
from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from crm_shared import health
from crm_shared.auth import IdentityVerifier, RequireIdentity
from crm_shared.bus.consumer import EventConsumer, HandlerTable
from crm_shared.bus.kafka import new_producer
from crm_shared.bus.outbox import OutboxRelay
from crm_shared.db import create_engine, max_connections, request_gate
from crm_shared.http import ObservabilityMiddleware
from crm_shared.logging import configure_logging, get_logger
from crm_shared.metrics import DatabasePoolMetrics, ServiceMetrics
from crm_shared.migrations import SchemaNotMigrated, schema_state
from crm_shared.problems import install_problem_handlers
from crm_shared.settings import ServiceSettings

log = get_logger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    default_port: int
    settings_class: type[ServiceSettings]
    app_factory: str  # "module:function", a uvicorn factory
    migrations: str  # Alembic script_location, "package:folder"
    subscribes: tuple[str, ...] = field(default_factory=tuple)

    def settings(self, **overrides) -> ServiceSettings:
        overrides.setdefault("service_name", self.name)
        return self.settings_class(**overrides)


class ServiceRuntime:
    """Resources of one service process, opened in the lifespan and closed in reverse order."""

    def __init__(self, settings: ServiceSettings, *, handlers: HandlerTable | None = None,
                 topics: Sequence[str] = (), migrations: str | None = None,
                 before_start: Callable[[], Awaitable[None]] | None = None) -> None:
        self.settings = settings
        self.migrations = migrations
        self.before_start = before_start
        self.metrics = ServiceMetrics(settings.service_name)
        self.engine = create_engine(settings)
        DatabasePoolMetrics(self.engine, max_connections(settings), self.metrics.registry)
        self.db_gate = request_gate(settings)
        self.producer = new_producer(settings.kafka, f"crm-{settings.service_name}")
        self.relay = OutboxRelay(engine=self.engine, dsn=settings.database_dsn, producer=self.producer,
                                 metrics=self.metrics, batch_max=settings.outbox_batch_max,
                                 poll_interval_s=settings.outbox_poll_interval_s,
                                 service=settings.service_name, kafka=settings.kafka,
                                 max_record_bytes=settings.kafka_max_request_bytes)
        self.consumer = (
            EventConsumer(engine=self.engine, producer=self.producer, metrics=self.metrics,
                          handlers=handlers, topics=topics, group_id=settings.group_id,
                          kafka=settings.kafka,
                          fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
                          batch_max=settings.consumer_batch_max, client_id=f"crm-{settings.service_name}",
                          session_timeout_ms=settings.kafka_session_timeout_ms,
                          heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms)
            if handlers and topics else None
        )
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> ServiceRuntime:
        if self.migrations is not None:
            await self._check_schema()
        if self.before_start is not None:
            await self.before_start()  # the service's own refusals, before anything is consumed
        # The broker may still be starting (compose, k8s): wait for it instead of crash-looping.
        async for attempt in stamina.retry_context(on=Exception, attempts=None, timeout=60.0,
                                                    wait_initial=0.2, wait_max=3.0):
            with attempt:
                await self.producer.start()
        self._tasks.append(asyncio.create_task(self._supervise("outbox-relay", self.relay.run)))
        if self.consumer is not None:
            async for attempt in stamina.retry_context(on=Exception, attempts=None, timeout=60.0,
                                                        wait_initial=0.2, wait_max=3.0):
                with attempt:
                    await self.consumer.start()
            self._tasks.append(asyncio.create_task(self._supervise("consumer", self.consumer.run)))
        log.info("service started", group=self.settings.group_id)
        return self

    async def __aexit__(self, *exc_info) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.consumer is not None:
            await self.consumer.stop()
        await self.producer.stop()
        await self.engine.dispose()
        log.info("service stopped")

    async def _check_schema(self) -> None:
        """Refuse to start on a database its migrations have not reached: handlers would fail on
        missing tables and columns, and such failures are not transient, so events would be
        dead-lettered instead of applied. The database may still be starting: wait for it."""
        async for attempt in stamina.retry_context(on=lambda exc: not isinstance(exc, SchemaNotMigrated),
                                                    attempts=None, timeout=60.0, wait_initial=0.2, wait_max=3.0):
            with attempt:
                async with self.engine.connect() as conn:
                    migrated = (await conn.execute(text("SELECT to_regclass('alembic_version') IS NOT NULL"))).scalar()
                    current = ((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
                               if migrated else None)
                state = schema_state(self.migrations, current)
                if state == "behind":
                    raise SchemaNotMigrated(
                        f"the database of {self.settings.service_name} is at revision {current or 'none'}, "
                        f"behind this release: run `crm migrate {self.settings.service_name}` first")
                if state == "newer":
                    log.warning("database schema is newer than this release", revision=current)

    async def _supervise(self, name: str, run: Callable) -> None:
        """Keep a background loop alive: a crash is logged and the loop restarts after a pause."""
        while True:
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task crashed; restarting", task=name)
                await asyncio.sleep(1.0)


def build_app(spec: ServiceSpec, settings: ServiceSettings, *, routers: Sequence[APIRouter] = (),
              handlers: HandlerTable | None = None, description: str = "",
              resources: Callable[[ServiceRuntime], AbstractAsyncContextManager[Any]] | None = None,
              middleware: Sequence[tuple[type, dict[str, Any]]] = (), public: bool = False,
              openapi_url: str | None = "/openapi.json",
              before_start: Callable[[], Awaitable[None]] | None = None) -> FastAPI:
    """The FastAPI app every service returns from ``create_app``.

    ``resources`` opens what only this service needs (the gateway's upstream pool) after the
    runtime and stores it as ``app.state.resources``. ``middleware`` is added inside the
    observability layer, innermost first. Services behind the gateway require its forwarded
    identity on ``/v1/…``; the gateway (``public=True``) authenticates callers itself.
    ``before_start`` runs once the schema is known to be migrated, before anything consumes or
    serves: a check that must refuse the start (it raises), such as the profile's PII key check.
    """
    configure_logging(settings.service_name, settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceRuntime(settings, handlers=handlers, topics=spec.subscribes,
                                  migrations=spec.migrations, before_start=before_start) as runtime:
            app.state.runtime = runtime
            if resources is None:
                _freeze_startup_objects()
                yield
                return
            async with resources(runtime) as opened:
                app.state.resources = opened
                _freeze_startup_objects()
                yield

    app = FastAPI(title=spec.title, description=description, version="0.1.0", lifespan=lifespan,
                  openapi_url=openapi_url)
    install_problem_handlers(app)
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)
    if not public:
        app.add_middleware(RequireIdentity, verifier=IdentityVerifier(settings.identity_verification_key(),
                                                                      settings.service_name))
    for cls, options in middleware:
        app.add_middleware(cls, **options)
    app.add_middleware(_LazyObservability)
    return app


def _freeze_startup_objects() -> None:
    """Move everything built at start-up out of the garbage collector's sight.

    Imports and app objects are never freed; without this, every full collection walks them
    all, a pause of tens of milliseconds that showed up as the p99 of bench/gateway.py.
    """
    gc.collect()
    gc.freeze()


class _LazyObservability:
    """Observability middleware bound to the runtime's metrics once the lifespan has built them."""

    def __init__(self, app) -> None:
        self.app = app
        self._inner: ObservabilityMiddleware | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._inner is None:
            self._inner = ObservabilityMiddleware(self.app, scope["app"].state.runtime.metrics)
        await self._inner(scope, receive, send)
