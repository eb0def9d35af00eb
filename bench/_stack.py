"""Service processes for the end-to-end benches (bench/backfill.py, bench/replay.py): each a real
``crm serve NAME`` on a fresh database of its own, with every clock-driven job (segment refresh,
loyalty jobs, SLA scan, churn refit) pushed out of the run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
from crm_shared.devstack import EmbeddedBroker, drop_database, ensure_database, free_port, wait_for_port, with_database
from crm_shared.migrations import upgrade

from bench.backbone import Phase

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


async def start_service(name: str, server_url: str, broker: EmbeddedBroker, workdir: Path) -> Service:
    """Migrate a fresh database and start the service on it; returns once it listens on its port."""
    database = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    await ensure_database(server_url, database)
    dsn = with_database(server_url, database)
    await asyncio.to_thread(upgrade, f"crm_{name}:migrations", dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    port = free_port()
    env = {**os.environ, **Phase.extra_env, "DATABASE_URL": dsn, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
           "HTTP_PORT": str(port), "ENVIRONMENT": "test", "LOG_LEVEL": "WARNING", **NO_TIMERS}
    process = subprocess.Popen([sys.executable, "-m", "crm_shared.cli", "serve", name], env=env,
                               stdout=open(workdir / f"{name}.log", "ab"), stderr=subprocess.STDOUT)
    wait_for_port(port, timeout_s=60, process=process)
    return Service(name, database, process, await asyncpg.connect(dsn))


async def stop_services(services: list[Service], server_url: str) -> None:
    for service in services:
        await service.db.close()
        service.process.terminate()
        service.process.wait(20)
        await drop_database(server_url, service.database)
