"""What makes every service look the same inside: its spec, its runtime and its app.

A service's ``app.py`` declares a :class:`ServiceSpec` (discovered by the dev runner through the
``crm.services`` entry point): its ``HANDLERS`` (the topics it consumes follow from them), its
repository, its periodic ``jobs``; and a ``create_app`` whose lifespan opens a
:class:`ServiceRuntime`, the one place the engine, the Kafka producer, the outbox relay and the
consumer are built. The order of a start: runtime (schema check, producer, relay), the service's
own resources, then the consumer and the jobs, which use them; a stop runs it backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import stamina
from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from crm_shared import health
from crm_shared.auth import IdentityVerifier, RequireIdentity
from crm_shared.background import PeriodicJob, running
from crm_shared.bus.consumer import EventConsumer, HandlerTable, ServiceHandler, bind_handlers, topics_of
from crm_shared.bus.kafka import new_producer
from crm_shared.bus.outbox import OutboxRelay
from crm_shared.db import create_engine, max_connections, request_gate
from crm_shared.http import ObservabilityMiddleware
from crm_shared.logging import configure_logging, get_logger
from crm_shared.metrics import DatabasePoolMetrics, ServiceMetrics
from crm_shared.migrations import SchemaNotMigrated, schema_state
from crm_shared.problems import install_problem_handlers
from crm_shared.settings import ServiceSettings
from crm_shared.uow import RepositoryFactory

log = get_logger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    default_port: int
    settings_class: type[ServiceSettings]
    app_factory: str  # "module:function", a uvicorn factory
    migrations: str  # Alembic script_location, "package:folder"
    handlers: Mapping[str, ServiceHandler] = field(default_factory=dict)  # handlers.HANDLERS
    repository: RepositoryFactory[Any] = lambda _: None  # repository.py: connection -> repository
    jobs: Callable[[ServiceRuntime, Any], Sequence[PeriodicJob]] | None = None  # jobs.periodic_jobs
    subscribes: tuple[str, ...] = ()  # derived from handlers (the topics their event types belong to)

    def __post_init__(self) -> None:
        if self.handlers:
            object.__setattr__(self, "subscribes", topics_of(self.handlers))

    def settings(self, **overrides) -> ServiceSettings:
        overrides.setdefault("service_name", self.name)
        return self.settings_class(**overrides)


class ServiceRuntime:
    """Resources of one service process, opened in the lifespan and closed in reverse order."""

    def __init__(self, settings: ServiceSettings, *, topics: Sequence[str] = (), migrations: str | None = None,
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
        self.consumer: EventConsumer | None = None
        self._topics = tuple(topics)
        self._tasks: list[asyncio.Task] = []
        self._consumer_task: asyncio.Task | None = None

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
        return self

    async def start_consumer(self, handlers: HandlerTable, repository: RepositoryFactory[Any]) -> None:
        """Start consuming with bound handlers (the service's resources are open by now)."""
        if not handlers or not self._topics:
            log.info("service started", group=self.settings.group_id)
            return
        settings = self.settings
        self.consumer = EventConsumer(
            engine=self.engine, producer=self.producer, metrics=self.metrics, handlers=handlers,
            topics=self._topics, group_id=settings.group_id, kafka=settings.kafka, repository=repository,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms, batch_max=settings.consumer_batch_max,
            client_id=f"crm-{settings.service_name}", session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms)
        async for attempt in stamina.retry_context(on=Exception, attempts=None, timeout=60.0,
                                                    wait_initial=0.2, wait_max=3.0):
            with attempt:
                await self.consumer.start()
        self._consumer_task = asyncio.create_task(self._supervise("consumer", self.consumer.run))
        log.info("service started", group=settings.group_id)

    async def stop_consumer(self) -> None:
        """Stop consuming before the resources the handlers use are closed."""
        task, self._consumer_task = self._consumer_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await consumer.stop()

    async def __aexit__(self, *exc_info) -> None:
        await self.stop_consumer()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
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
              description: str = "",
              resources: Callable[[ServiceRuntime], AbstractAsyncContextManager[Any]] | None = None,
              middleware: Sequence[tuple[type, dict[str, Any]]] = (), public: bool = False,
              openapi_url: str | None = "/openapi.json", open_prefixes: tuple[str, ...] = (),
              before_start: Callable[[], Awaitable[None]] | None = None) -> FastAPI:
    """The FastAPI app every service returns from ``create_app``.

    ``resources`` opens what only this service needs (the gateway's upstream pool) after the
    runtime and stores it as ``app.state.resources``. ``middleware`` is added inside the
    observability layer, innermost first. Services behind the gateway require its forwarded
    identity on ``/v1/…``; the gateway (``public=True``) authenticates callers itself.
    ``open_prefixes`` (e.g. ``("/v1/public/",)``) are the paths the gateway forwards without an
    identity (its public routes); the service authenticates those requests itself.
    ``before_start`` runs once the schema is known to be migrated, before anything consumes or
    serves: a check that must refuse the start (it raises), such as the profile's PII key check.
    """
    configure_logging(settings.service_name, settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceRuntime(settings, topics=spec.subscribes, migrations=spec.migrations,
                                  before_start=before_start) as runtime:
            app.state.runtime = runtime
            async with (resources(runtime) if resources is not None else _nothing()) as opened:
                app.state.resources = opened
                await runtime.start_consumer(bind_handlers(spec.handlers, opened), spec.repository)
                try:
                    async with running(spec.jobs(runtime, opened) if spec.jobs is not None else ()):
                        _freeze_startup_objects()
                        yield
                finally:
                    await runtime.stop_consumer()

    app = FastAPI(title=spec.title, description=description, version="0.1.0", lifespan=lifespan,
                  openapi_url=openapi_url)
    install_problem_handlers(app)
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)
    if not public:
        app.add_middleware(RequireIdentity, verifier=IdentityVerifier(settings.identity_verification_key(),
                                                                      settings.service_name),
                           open_prefixes=open_prefixes)
    for cls, options in middleware:
        app.add_middleware(cls, **options)
    app.add_middleware(_LazyObservability)
    return app


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield None


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
