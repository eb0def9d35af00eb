"""Service processes for the end-to-end benches, each a real ``crm serve NAME`` logging to
``NAME.log`` in the bench's working folder. bench/e2e.py and bench/gateway.py wire the services
with settings of their own and take only the launch and the shutdown from here (``serve_process``,
``stop_processes``); bench/backfill.py and bench/replay.py take a whole stack (``running_services``):
the database server, a broker, and the services, each on a fresh database of its own, with every
clock-driven job (segment refresh, loyalty jobs, SLA scan, churn refit) pushed out of the run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
from crm_shared.devstack import EmbeddedBroker, drop_database, free_port, wait_for_port

from bench.backbone import Phase, create_migrated_database, postgres_server, start_broker_with_topics

# Timers that would otherwise start during a run (tests/harness/infra.py service_env does the same).
NO_TIMERS = {"SEGMENT_REFRESH_FIRST_DELAY_S": "3600", "JOBS_FIRST_DELAY_S": "3600",
             "SLA_SCAN_FIRST_DELAY_S": "3600", "REFIT_FIRST_DELAY_S": "3600"}


@dataclass
class Service:
    name: str
    database: str
    process: subprocess.Popen
    db: asyncpg.Connection

    def rss_mb(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20


@dataclass
class RunningServices:
    broker: EmbeddedBroker
    services: list[Service]


def serve_process(name: str, env: dict[str, str], workdir: Path) -> subprocess.Popen:
    """``crm serve NAME`` as a user runs it, its output in ``workdir/NAME.log``; does not wait for it."""
    return subprocess.Popen([sys.executable, "-m", "crm_shared.cli", "serve", name], env=env,
                            stdout=open(workdir / f"{name}.log", "ab"), stderr=subprocess.STDOUT)


def stop_processes(processes: Iterable[subprocess.Popen], wait_s: float) -> None:
    """Terminate the processes, killing any still running ``wait_s`` seconds after its turn came."""
    processes = list(processes)
    # Every one is signalled before any is waited for, so that they shut down side by side.
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()


async def start_service(name: str, server_url: str, broker: EmbeddedBroker, workdir: Path) -> Service:
    """Migrate a fresh database and start the service on it; returns once it listens on its port."""
    database = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    dsn = await create_migrated_database(server_url, database, f"crm_{name}:migrations")
    port = free_port()
    env = {**os.environ, **Phase.extra_env, "DATABASE_URL": dsn, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
           "HTTP_PORT": str(port), "ENVIRONMENT": "test", "LOG_LEVEL": "WARNING", **NO_TIMERS}
    process = serve_process(name, env, workdir)
    wait_for_port(port, timeout_s=60, process=process)
    return Service(name, database, process, await asyncpg.connect(dsn))


async def stop_services(services: list[Service], server_url: str) -> None:
    for service in services:
        await service.db.close()
        service.process.terminate()
        service.process.wait(20)
        await drop_database(server_url, service.database)


@asynccontextmanager
async def running_services(names: Iterable[str], workdir: Path) -> AsyncIterator[RunningServices]:
    """bench/backbone.py's database server, a fresh broker with every topic, and the services started
    one after another; all stopped (and their databases dropped) on leaving."""
    server_url, postgres = postgres_server(workdir)
    started: list[Service] = []
    try:
        broker = await start_broker_with_topics(workdir)
        try:
            for name in names:
                started.append(await start_service(name, server_url, broker, workdir))
            # Listening on its port is not yet consuming: whatever is timed next must not include
            # the consumers joining their groups.
            await asyncio.sleep(2)
            yield RunningServices(broker, started)
        finally:
            await stop_services(started, server_url)
            broker.stop()
    finally:
        if postgres:
            postgres.stop()
