"""Fixtures shared by every tier. See tests/harness/infra.py for what they start and why."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from crm_shared.devstack import (
    EmbeddedBroker,
    EmbeddedPostgres,
    discover_services,
    drop_database,
    ensure_database,
    free_port,
    run_blocking,
)
from crm_shared.migrations import upgrade

from tests.harness.browser import (  # noqa: F401  (browser tests: Debian's chromium through Playwright)
    browser,
    browser_artifacts,
    browser_context_args,
    page,
    pytest_runtest_makereport,
)
from tests.harness.infra import Broker, Database, ServiceProcess, database_url_for, leaks_in, service_env
from tests.service.gateway.conftest import gateway_stack  # noqa: F401  (gateway tests, and services behind it)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A PostgreSQL server: ``DATABASE_URL`` if set, else an embedded one for this session."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured.replace("postgresql+asyncpg://", "postgresql://", 1)
        return
    # Not under pytest's tmp_path: pytest deletes all but the last three runs' folders when a run
    # starts, and PostgreSQL shuts down when its data folder goes, so another pytest run on this
    # machine (a developer's, beside `make test`) would take this session's server down with it.
    folder = Path(tempfile.mkdtemp(prefix="crm-test-pg-"))
    server = EmbeddedPostgres(folder / "data", free_port(), fast=True).start()
    try:
        yield server.admin_url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_templates(pg_server_url) -> Iterator[dict[str, str]]:
    """One migrated template database per service; each test copies it (fast, isolated)."""
    session = uuid.uuid4().hex[:8]
    templates = {}
    for spec in discover_services().values():
        name = f"tpl_{spec.name}_{session}"
        run_blocking(ensure_database(pg_server_url, name))
        upgrade(spec.migrations, database_url_for(pg_server_url, name))
        templates[spec.name] = name
    yield templates
    for name in templates.values():
        run_blocking(drop_database(pg_server_url, name))


@pytest.fixture
def make_database(pg_server_url, migrated_templates) -> Iterator[Callable[[str], Database]]:
    """``make_database("profile")`` → a fresh, migrated database of that service for this test."""
    created: list[str] = []

    def make(service: str) -> Database:
        name = f"t_{service}_{uuid.uuid4().hex[:10]}"
        run_blocking(ensure_database(pg_server_url, name, template=migrated_templates[service]))
        created.append(name)
        return Database(database_url_for(pg_server_url, name))

    yield make
    for name in created:
        run_blocking(drop_database(pg_server_url, name))


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    """A Kafka-protocol broker with every topic: ``KAFKA_BOOTSTRAP_SERVERS`` or a fresh Tansu."""
    namespace = uuid.uuid4().hex[:10]
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    embedded = None
    if configured:
        result = Broker(configured, namespace)
    else:
        embedded = EmbeddedBroker(free_port(), log_path=tmp_path / "tansu.log").start()
        result = Broker(embedded.bootstrap_servers, namespace, process=embedded.process)
    run_blocking(result.create_topics())
    try:
        yield result
    finally:
        if embedded:
            result.resume()  # a test may have paused it; a stopped process cannot act on SIGTERM
            embedded.stop()


class ServiceStarter:
    """``start_service("profile", database, **env)`` starts one service and waits until it listens;
    ``start_service.together([(name, database, env), …])`` starts several at once (a service
    start is mostly imports and the broker's one-second group join, which overlap)."""

    def __init__(self, tmp_path: Path, broker: Broker) -> None:
        self._tmp_path, self._broker = tmp_path, broker
        self.started: list[ServiceProcess] = []

    def __call__(self, name: str, database: Database, **extra_env: str) -> ServiceProcess:
        return self._launch(name, database, extra_env).wait_listening()

    def together(self, specs: list[tuple[str, Database, dict[str, str]]]) -> list[ServiceProcess]:
        launched = [self._launch(name, database, env) for name, database, env in specs]
        return [process.wait_listening() for process in launched]

    def _launch(self, name: str, database: Database, extra_env: dict[str, str]) -> ServiceProcess:
        port = int(extra_env["HTTP_PORT"]) if "HTTP_PORT" in extra_env else free_port()  # a port chosen ahead
        process = ServiceProcess(name, service_env(name, database=database, broker=self._broker, port=port,
                                                   **extra_env),
                                 port, self._tmp_path / f"{name}-{len(self.started)}.log")
        self.started.append(process)
        return process.launch()


@pytest.fixture
def start_service(tmp_path, broker) -> Iterator[ServiceStarter]:
    """A :class:`ServiceStarter`; every service it started is stopped after the test."""
    starter = ServiceStarter(tmp_path, broker)
    yield starter
    leaks = []
    for process in starter.started:
        process.stop()
        log = Path(process.log_path)
        if log.exists():  # shown by pytest only when the test failed
            text = log.read_text(errors="replace")
            print(f"----- {process.name} log (tail) -----")
            print("\n".join(text.splitlines()[-60:]))
            leaks += [f"{process.name} logged {leak}" for leak in leaks_in(text)]
    # Every test that starts a service also checks that its logs hold no secret, token or test PII.
    assert not leaks, "\n".join(leaks[:20])


TIERS = ("unit", "service", "e2e", "reliability")


def pytest_collection_modifyitems(config, items) -> None:
    """Each test is marked with its tier, the folder it is in: `-m unit`, `-m "not reliability"`…"""
    root = Path(__file__).parent
    for item in items:
        parts = Path(item.path).resolve().relative_to(root).parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
