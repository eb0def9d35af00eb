"""bench/campaigns.py's stack: the profile, campaigns and gateway services as ``crm serve`` processes
on fresh databases of their own and a fresh Tansu, wired as tests/harness/campaigns.py wires them (the
campaigns service reads contacts through the gateway with a service token); and the processes' RSS and
CPU seconds, and the whole machine's busy CPU."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil
from crm_shared.auth import mint_user_token
from crm_shared.devstack import drop_database, free_port, wait_for_port

from bench._mailsink import Sink
from bench._stack import NO_TIMERS, serve_process, stop_processes
from bench.backbone import create_migrated_database, start_broker_with_topics

AUTH_SECRET = "bench-auth-secret-for-forwarded-identities-0123456789"
JWT_SECRET = "bench-jwt-secret-of-the-identity-provider-0123456789"
PII_KEY = "YmVuY2gtcGlpLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Ng=="
SERVICES = ("profile", "campaigns", "gateway")
SCOPES = ("profiles:read", "pii:read", "coupons:issue", "loyalty:bonus", "tickets:write")


def bearer(role: str, subject: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + mint_user_token(secret=JWT_SECRET, issuer="crm-dev", audience="crm",
                                                         role=role, subject=subject, ttl_s=7200)}


@dataclass
class Stack:
    server_url: str
    broker: object
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    dbs: dict[str, asyncpg.Connection] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)
    gateway_url: str = ""
    campaigns_url: str = ""


    def usage(self, sink: Sink) -> dict[str, dict[str, float]]:
        """RSS and CPU seconds so far of each process; ``machine``: busy CPU seconds of all cores."""
        out = {}
        for name, process in [*self.processes.items(), ("sink", sink.process)]:
            p = psutil.Process(process.pid)
            cpu = p.cpu_times()
            out[name] = {"rss_mb": round(p.memory_info().rss / 2**20, 1), "cpu_s": cpu.user + cpu.system}
        t = psutil.cpu_times()
        out["machine"] = {"rss_mb": None, "cpu_s": sum(getattr(t, f, 0.0) for f in (
            "user", "nice", "system", "irq", "softirq", "steal"))}
        # PostgreSQL's backends come and go with the pools, Tansu and this process are not listed:
        # what the machine spent besides the processes above.
        out["other"] = {"rss_mb": None, "cpu_s": out["machine"]["cpu_s"] - sum(
            u["cpu_s"] for n, u in out.items() if n != "machine")}
        return out


def cpu_delta(before: dict, after: dict) -> dict[str, float]:
    return {n: round(after[n]["cpu_s"] - before[n]["cpu_s"], 1) for n in after if n in before}


def rss(usage: dict) -> dict[str, float]:
    return {n: u["rss_mb"] for n, u in usage.items() if u["rss_mb"] is not None}


async def start_stack(args, workdir: Path, server_url: str, smtp_port: int) -> Stack:
    stack = Stack(server_url, await start_broker_with_topics(workdir))
    ports = {name: free_port() for name in SERVICES}
    stack.gateway_url = f"http://127.0.0.1:{ports['gateway']}"
    stack.campaigns_url = f"http://127.0.0.1:{ports['campaigns']}"
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    base.update({"ENVIRONMENT": "test", "LOG_LEVEL": "WARNING", "AUTH_SECRET": AUTH_SECRET, "PII_KEY": PII_KEY,
                 "KAFKA_BOOTSTRAP_SERVERS": stack.broker.bootstrap_servers, "KAFKA_SESSION_TIMEOUT_MS": "6000",
                 "KAFKA_HEARTBEAT_INTERVAL_MS": "1000", **NO_TIMERS})
    unused = {f"{n.upper()}_URL": f"http://127.0.0.1:{free_port()}" for n in ("loyalty", "tickets", "churn")}
    extra = {
        "profile": {},
        "campaigns": {"GATEWAY_URL": stack.gateway_url, "PUBLIC_BASE_URL": stack.gateway_url,
                      "GATEWAY_TOKEN": mint_user_token(secret=JWT_SECRET, issuer="crm-dev", audience="crm",
                                                       role="service", subject="campaigns", scopes=SCOPES,
                                                       ttl_s=7200),
                      "SMTP_PORT": str(smtp_port), "SMTP_START_TLS": "false",
                      **{k: f"bench-{k.lower()}-0123456789abcdef0123456789" for k in
                         ("WEBHOOK_SECRET", "CALLBACK_SECRET", "LINK_KEY")}, **dict(args.set)},
        "gateway": {"JWT_SECRET": JWT_SECRET, "RATE_LIMIT_CLIENT": args.gateway_client_limit,
                    "PROFILE_URL": f"http://127.0.0.1:{ports['profile']}",
                    "CAMPAIGNS_URL": f"http://127.0.0.1:{ports['campaigns']}", **unused},
    }
    for name in SERVICES:
        stack.databases[name] = f"bench_campaigns_{name}_{uuid.uuid4().hex[:6]}"
        dsn = await create_migrated_database(server_url, stack.databases[name], f"crm_{name}:migrations")
        stack.dbs[name] = await asyncpg.connect(dsn)
        stack.processes[name] = serve_process(name, {**base, **extra[name], "SERVICE_NAME": name, "DATABASE_URL": dsn,
                                                     "HTTP_PORT": str(ports[name])}, workdir)
    for name in SERVICES:
        wait_for_port(ports[name], timeout_s=90, process=stack.processes[name])
    return stack


async def stop_stack(stack: Stack) -> None:
    stop_processes(stack.processes.values(), 20)
    for name, db in stack.dbs.items():
        await db.close()
        await drop_database(stack.server_url, stack.databases[name])
    stack.broker.stop()


async def poll(probe, *, timeout_s: float, every_s: float = 0.1, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await probe():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(every_s)


