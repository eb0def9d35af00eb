"""End-to-end load and soak benchmark: the whole CRM under a realistic mixed stream.

    python bench/e2e.py [--rate 200] [--seconds 60] [--saturation-events 100000] [--customers 2000]

The stack, as in production but on loopback: PostgreSQL (embedded, or DATABASE_URL's server), one
embedded Tansu broker with every topic (4 partitions), and the five services as real processes
(``python -m crm_shared.cli serve NAME``) on fresh migrated databases, the gateway in front of the
other four with a JWT_SECRET. Periodic jobs stay ON with short delays, because this is a soak:
the SLA scan (first after 5 s, every 30 s), the loyalty jobs (30 s, every 120 s), the segment
refresh (20 s, every 60 s), the churn refit (45 s, every 300 s), metric refreshes every 15 s.

Warm-up: ``--customers`` customers register over Kafka (plus 50 "probe" customers who each get one
paid order); the bench waits until every consumer has caught up.

The mixed stream (seeded, ``--seed``). Kafka events, per 100:
    4 ``commerce.customer.registered`` (new customers, who join the pool),
    56 ``commerce.interaction.recorded`` (page_view 20, product_view 20, search 6, cart_add 7,
       email_open 2, email_click 1),
    14 ``order.placed``, 12 ``order.paid`` (the oldest placed order), 1 ``order.cancelled``,
    11 ``order.completed`` and 2 ``order.refunded`` (the oldest paid orders, once at least 50 are
       waiting, so an order completes some seconds after it was paid).
Over HTTP through the gateway (aiohttp clients, see bench/loyalty.py for why not httpx), in phase 1:
    a ticket every 0.5 s (``POST /v1/tickets`` by an agent, a complaint about one of the customer's
    orders), resolved by the agent 1 s later (``POST …/transitions``), then rated by its customer
    (``POST …/csat``, a customer token); and a batch of 5 interactions every 0.5 s by a customer
    about itself (``POST /v1/events``).

Phase 1, "steady": ``--rate`` Kafka events/s for ``--seconds``, open loop (a tick every 20 ms
publishes what is due). Every 10th paid order goes to a probe customer (an existing customer with
no other order in flight; at most 8 probes in flight, else that order stays an ordinary one)
as a fresh order of its own: from the moment it is handed to the producer, the bench polls
``GET /v1/loyalty/accounts/{id}`` through the gateway until ``lifetime_earned`` or ``pending``
grew → p50/p99/max ms (order paid → points visible to a caller of the API), also per 10 s window.
The polling is kept light: every 10 ms at first, then every tenth of the time waited so far, at
most every 200 ms (a slow answer is resolved to within ~10%, and a slow service is not buried
under polls). Every 2 s the bench also reads each consumer's lag (its /metrics), per window.

Phase 2, "saturation": ``--saturation-events`` Kafka events of the same mix, generated
beforehand, published as fast as the producer goes; timed from the first send until every
consumer has processed every commerce event published so far (its ``crm_events_*_total``
counters for ``commerce.*`` types) and every consumer group's lag (``crm_consumer_lag_records`` of
each service's /metrics: the high watermark of the last fetch minus the position; the broker's
end offsets are not usable on Tansu) is 0 on two scrapes in a row → events/s end to end. The
cascade (crm.* events the services publish for one another) is inside that time.

End: lag back to zero after phase 1 (seconds to drain, bounded), RSS and PSS of every process
(each service with its children, the broker, PostgreSQL and its backends if embedded) and the
total against the 2 GiB target (PSS counts shared pages once, so PostgreSQL's shared buffers are
not counted once per backend; RSS over-counts them). Every wait is bounded. Prints one JSON line.

The run fails (exit status 1) when any service logged an error or a traceback (or a 5xx answer),
start-up and shutdown included, or when the run could not finish: ``failed`` in the JSON names
each such service (and ``aborted`` the run's own error), ``errors_in_logs`` shows its first lines
and ``error_lines`` counts them all. A clean run has ``"failed": []`` and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_shared.auth import mint_user_token  # noqa: E402
from crm_shared.bus.kafka import new_producer  # noqa: E402
from crm_shared.devstack import discover_services, drop_database, free_port, wait_for_port  # noqa: E402
from crm_shared.events.catalogue import (  # noqa: E402
    TOPIC_CUSTOMERS,
    TOPIC_INTERACTIONS,
    TOPIC_ORDERS,
)
from crm_shared.events.envelope import to_kafka  # noqa: E402

from bench._stack import serve_process, stop_processes  # noqa: E402
from bench.backbone import create_migrated_database, postgres_server, start_broker_with_topics  # noqa: E402
from bench.stats import quantile  # noqa: E402
from tests.harness.events import customer_registered, interaction, order_event  # noqa: E402

AUTH_SECRET = "bench-auth-secret-for-forwarded-identities-0123456789"
JWT_SECRET = "bench-jwt-secret-of-the-identity-provider-0123456789"
PII_KEY = "YmVuY2gtcGlpLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Ng=="
SERVICES = ("profile", "loyalty", "tickets", "churn", "gateway")
CONSUMERS = ("profile", "loyalty", "tickets", "churn")
# The commerce topics each consumer subscribes to (its handlers' TOPICS).
COMMERCE_SUBSCRIPTIONS = {
    "profile": (TOPIC_CUSTOMERS, TOPIC_ORDERS, TOPIC_INTERACTIONS),
    "loyalty": (TOPIC_CUSTOMERS, TOPIC_ORDERS),
    "tickets": (),
    "churn": (TOPIC_ORDERS, TOPIC_INTERACTIONS),
}
PERIODIC = {
    "SLA_SCAN_FIRST_DELAY_S": "5", "SLA_SCAN_INTERVAL_S": "30",
    "JOBS_FIRST_DELAY_S": "30", "JOBS_INTERVAL_S": "120",
    "SEGMENT_REFRESH_FIRST_DELAY_S": "20", "SEGMENT_REFRESH_INTERVAL_S": "60",
    "REFIT_FIRST_DELAY_S": "45", "REFIT_INTERVAL_S": "300",
    "METRICS_REFRESH_S": "15",
}
# --no-periodic (diagnosis only): the jobs start an hour in, i.e. never during the run
QUIET = {"SLA_SCAN_FIRST_DELAY_S": "3600", "JOBS_FIRST_DELAY_S": "3600", "SEGMENT_REFRESH_FIRST_DELAY_S": "3600",
         "REFIT_FIRST_DELAY_S": "3600", "METRICS_REFRESH_S": "15"}
INTERACTIONS = [("page_view", 20), ("product_view", 20), ("search", 6), ("cart_add", 7), ("email_open", 2),
                ("email_click", 1)]
PRODUCTS = [("SKU-1", "tea"), ("SKU-2", "tea"), ("SKU-3", "teaware"), ("SKU-4", "snacks"), ("SKU-5", "gifts")]
MIX = [("register", 4), ("interaction", 56), ("placed", 14), ("paid", 12), ("cancelled", 1), ("completed", 11),
       ("refunded", 2)]
PROBES = 50
MAX_PROBES_IN_FLIGHT = 8


def token(role: str, subject: str) -> str:
    return mint_user_token(secret=JWT_SECRET, issuer="crm-dev", audience="crm", role=role, subject=subject,
                           ttl_s=7200)


def bearer(role: str, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, subject)}"}


def progress(message: str, started: float) -> None:
    print(f"[e2e {time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)


def summary(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    return {"count": len(values), "p50_ms": round(quantile(values, 0.50), 1),
            "p99_ms": round(quantile(values, 0.99), 1), "max_ms": round(max(values), 1)}


class Mix:
    """The seeded generator of the mixed Kafka stream (proportions in the module docstring)."""

    def __init__(self, rng: random.Random, customers: list[str]) -> None:
        self.rng = rng
        self.customers = list(customers)
        self.placed: deque[tuple[str, str, str, list[dict]]] = deque()
        self.paid: deque[tuple[str, str, str, list[dict]]] = deque()
        self.kinds, self.weights = zip(*MIX, strict=True)
        self.interaction_kinds, self.interaction_weights = zip(*INTERACTIONS, strict=True)

    def _order(self, customer: str) -> tuple[str, str, str, list[dict]]:
        sku, category = self.rng.choice(PRODUCTS)
        amount = f"{self.rng.randint(20, 600)}.{self.rng.randint(0, 99):02d}"
        return (customer, f"o-{uuid.uuid4().hex[:14]}", amount,
                [{"sku": sku, "category": category, "quantity": 1, "unit_price": amount}])

    def paid_event(self, order: tuple[str, str, str, list[dict]], now: datetime):
        customer, order_id, amount, items = order
        return TOPIC_ORDERS, order_event("paid", customer, order_id, amount=amount, items=items, at=now)

    def next(self, now: datetime, *, paid_hook=None):
        """One event (topic, CloudEvent); ``paid_hook(order)`` may swap the order of a paid event."""
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind == "register":
            customer = f"c-{uuid.uuid4().hex[:12]}"
            self.customers.append(customer)
            return TOPIC_CUSTOMERS, customer_registered(customer, at=now)
        if kind == "paid" and self.placed:
            order = self.placed.popleft()
            self.paid.append(order)
            if paid_hook is not None:
                order = paid_hook(order)
            return self.paid_event(order, now)
        if kind == "cancelled" and self.placed:
            customer, order_id, amount, items = self.placed.pop()  # the newest: never paid
            return TOPIC_ORDERS, order_event("cancelled", customer, order_id, amount=amount, items=items, at=now)
        if kind in ("completed", "refunded") and len(self.paid) > 50:
            customer, order_id, amount, items = self.paid.popleft()
            if kind == "completed":
                return TOPIC_ORDERS, order_event("completed", customer, order_id, amount=amount, items=items, at=now)
            return TOPIC_ORDERS, order_event("refunded", customer, order_id, amount=amount, items=items, at=now,
                                             refund_amount=amount, refunded_items=items)
        if kind in ("placed", "paid", "cancelled"):
            order = self._order(self.rng.choice(self.customers))
            self.placed.append(order)
            customer, order_id, amount, items = order
            return TOPIC_ORDERS, order_event("placed", customer, order_id, amount=amount, items=items, at=now)
        customer = self.rng.choice(self.customers)
        kind = self.rng.choices(self.interaction_kinds, self.interaction_weights)[0]
        return TOPIC_INTERACTIONS, interaction(customer, kind=kind, at=now,
                                               attributes={"sku": self.rng.choice(PRODUCTS)[0]})


class Stack:
    """PostgreSQL, Tansu, the five services; metrics scraping and memory figures."""

    def __init__(self, workdir: Path, periodic: bool = True) -> None:
        self.workdir = workdir
        self.periodic = periodic
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports = {name: free_port() for name in SERVICES}
        self.databases = {name: f"bench_e2e_{name}_{os.getpid()}" for name in SERVICES}
        self.postgres = self.broker = None

    async def start(self) -> None:
        self.server_url, self.postgres = postgres_server(self.workdir)
        self.broker = await start_broker_with_topics(self.workdir)
        specs = discover_services()
        dsns = {name: await create_migrated_database(self.server_url, self.databases[name], specs[name].migrations)
                for name in SERVICES}
        upstreams = {f"{n.upper()}_URL": f"http://127.0.0.1:{self.ports[n]}" for n in CONSUMERS}
        for name in SERVICES:
            env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
            env.update({
                "SERVICE_NAME": name, "ENVIRONMENT": "test", "LOG_LEVEL": "WARNING",
                "DATABASE_URL": dsns[name],
                "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers, "HTTP_PORT": str(self.ports[name]),
                "CONSUMER_GROUP": f"crm-{name}", "AUTH_SECRET": AUTH_SECRET, "JWT_SECRET": JWT_SECRET,
                "PII_KEY": PII_KEY, "KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
                # the probes poll their own accounts every 10 ms: limits are checked, never hit
                "RATE_LIMIT_CLIENT": "100000000/minute", "RATE_LIMIT_CUSTOMER": "100000000/minute",
                **(PERIODIC if self.periodic else QUIET), **upstreams,
            })
            self.processes[name] = serve_process(name, env, self.workdir)
        for name in SERVICES:
            wait_for_port(self.ports[name], timeout_s=90, process=self.processes[name])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    async def metrics(self, http: aiohttp.ClientSession, name: str) -> dict[str, float]:
        """Processed commerce events, lag and outbox backlog of one service, from its /metrics."""
        async with http.get(self.url(name) + "/metrics") as response:
            text = await response.text()
        figures = {"processed": 0.0, "lag": 0.0, "outbox": 0.0}
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            match = re.match(r"^(\w+)(\{.*\})? (\S+)$", line)
            if not match:
                continue
            metric, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
            if metric in ("crm_events_applied_total", "crm_events_ignored_total", "crm_events_duplicate_total"):
                if 'type="commerce.' in labels:
                    figures["processed"] += value
            elif metric == "crm_events_dead_lettered_total" and 'topic="commerce.' in labels:
                figures["processed"] += value
            elif metric == "crm_consumer_lag_records":
                figures["lag"] += value
            elif metric == "crm_outbox_backlog_rows":
                figures["outbox"] += value
            elif metric in ("crm_consumer_batch_duration_seconds_sum", "crm_consumer_batch_duration_seconds_count",
                            "crm_consumer_batch_size_sum", "crm_profile_segment_refresh_seconds_count"):
                figures[metric] = value
        return figures

    async def batches(self, http: aiohttp.ClientSession) -> dict[str, tuple[float, float, float]]:
        """Per consumer: (batches, records, seconds) applied so far."""
        out = {}
        for name in CONSUMERS:
            f = await self.metrics(http, name)
            out[name] = (f.get("crm_consumer_batch_duration_seconds_count", 0.0),
                         f.get("crm_consumer_batch_size_sum", 0.0),
                         f.get("crm_consumer_batch_duration_seconds_sum", 0.0))
        return out

    @staticmethod
    def batch_delta(before: dict, after: dict, elapsed_s: float) -> dict:
        out = {}
        for name in before:
            n, records, seconds = (a - b for a, b in zip(after[name], before[name], strict=True))
            out[name] = {"batches": int(n), "mean_records": round(records / n, 1) if n else 0,
                         "mean_ms": round(seconds / n * 1000, 1) if n else 0,
                         "busy_share": round(seconds / elapsed_s, 2)}
        return out

    async def drained(self, http: aiohttp.ClientSession, published: Counter, timeout_s: float) -> dict:
        """Wait until every consumer processed every commerce event published so far and every
        lag is 0 on two scrapes in a row; return the seconds it took and the last figures."""
        started = time.perf_counter()
        deadline = started + timeout_s
        zero_in_a_row = 0
        while True:
            figures = {name: await self.metrics(http, name) for name in CONSUMERS}
            behind = {name: int(sum(published[t] for t in COMMERCE_SUBSCRIPTIONS[name]) - figures[name]["processed"])
                      for name in CONSUMERS}
            lag = {name: int(figures[name]["lag"]) for name in CONSUMERS}
            done = all(b <= 0 for b in behind.values()) and not any(lag.values())
            zero_in_a_row = zero_in_a_row + 1 if done else 0
            if zero_in_a_row >= 2:
                return {"seconds": round(time.perf_counter() - started, 2), "drained": True}
            if time.perf_counter() > deadline:
                return {"seconds": round(time.perf_counter() - started, 2), "drained": False,
                        "events_not_processed": behind, "lag": lag}
            await asyncio.sleep(0.25)

    def memory(self) -> dict:
        """RSS and PSS (MiB) of every process of the stack, each with its children."""
        groups: dict[str, psutil.Process] = {name: psutil.Process(p.pid) for name, p in self.processes.items()}
        groups["broker"] = psutil.Process(self.broker.process.pid)
        if self.postgres is not None:
            groups["postgresql"] = psutil.Process(self.postgres.process.pid)
        figures: dict[str, dict[str, float]] = {}
        for name, root in groups.items():
            rss = pss = 0
            count = 0
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    info = proc.memory_full_info()
                    rss += info.rss
                    pss += getattr(info, "pss", info.rss)
                    count += 1
            figures[name] = {"rss_mib": round(rss / 2**20, 1), "pss_mib": round(pss / 2**20, 1), "processes": count}
        rss_total = sum(f["rss_mib"] for f in figures.values())
        pss_total = sum(f["pss_mib"] for f in figures.values())
        return {"per_process": figures, "rss_total_mib": round(rss_total, 1), "pss_total_mib": round(pss_total, 1),
                "target_mib": 2048, "under_target_rss": rss_total < 2048, "under_target_pss": pss_total < 2048,
                "embedded_postgresql": self.postgres is not None}

    def logged_errors(self) -> dict[str, dict]:
        """Per service whose log has any: its error and traceback lines, counted, the first five shown."""
        logs = {name: self.workdir / f"{name}.log" for name in SERVICES}
        return {name: found for name, path in logs.items()
                if path.exists() and (found := error_lines(path.read_text(errors="replace")))}

    async def stop(self) -> None:
        stop_processes(self.processes.values(), wait_s=20)
        for name in SERVICES:
            with contextlib.suppress(Exception):  # best-effort cleanup of a bench database
                await drop_database(self.server_url, self.databases[name])
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()


# An error or critical record of the JSON logs, a traceback (logged or printed), a 5xx answer.
ERROR_LINE = re.compile(r'"level": ?"(error|critical)"|Traceback|" 5\d\d ')


def error_lines(log_text: str) -> dict | None:
    lines = [line for line in log_text.splitlines() if ERROR_LINE.search(line)]
    return {"lines": len(lines), "first": [line[:400] for line in lines[:5]]} if lines else None


def verdict(errors_in_logs: dict[str, dict], aborted: str | None = None) -> list[str]:
    """Why the run failed (empty: it passed): every service that logged an error or a traceback,
    and the run itself when it could not finish."""
    failed = [f"{name} logged {found['lines']} error or traceback line(s)" for name, found in errors_in_logs.items()]
    return failed + ([f"the run was aborted: {aborted}"] if aborted else [])


class Publisher:
    """One producer; counts what it published per topic and keeps the acknowledgements."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = new_producer(bootstrap, "bench-e2e")
        self.published: Counter = Counter()
        self.pending: list[asyncio.Future] = []

    async def send(self, topic: str, event) -> None:
        key, value, headers = to_kafka(event)
        self.pending.append(await self.producer.send(topic, value=value, key=key, headers=headers))
        self.published[topic] += 1

    async def send_raw(self, topic: str, key: bytes, value: bytes, headers) -> None:
        self.pending.append(await self.producer.send(topic, value=value, key=key, headers=headers))
        self.published[topic] += 1

    async def flush(self) -> None:
        pending, self.pending = self.pending, []
        await asyncio.wait_for(asyncio.gather(*pending), timeout=120)


class Probes:
    """Order paid → points visible through the gateway, for probe customers with one order in flight."""

    def __init__(self, http: aiohttp.ClientSession, gateway: str, customers: list[str]) -> None:
        self.http = http
        self.gateway = gateway
        self.idle = deque(customers)
        self.seen: dict[str, tuple[int, int]] = {}
        self.latencies: list[float] = []
        self.get_latencies: list[float] = []
        self.timeline: list[tuple[float, float | None]] = []  # (sent at, latency ms or None: timed out)
        self.error_times: list[tuple[float, int]] = []
        self.timeouts = 0
        self.errors: Counter = Counter()
        self.tasks: set[asyncio.Task] = set()
        self.headers = bearer("agent", "agent-bench-probe")

    async def account(self, customer: str) -> tuple[int, int] | None:
        started = time.perf_counter()
        async with self.http.get(f"{self.gateway}/v1/loyalty/accounts/{customer}", headers=self.headers) as answer:
            if answer.status != 200:
                self.errors[answer.status] += 1
                self.error_times.append((started, answer.status))
                await answer.read()
                return None
            body = await answer.json()
            self.get_latencies.append((time.perf_counter() - started) * 1000)
            return body["lifetime_earned"], body["pending"]

    def windows(self, start: float, width_s: float = 10.0) -> list[dict]:
        """The probes by the window (seconds into the phase) their order was paid in."""
        out = []
        last = max([t for t, _ in self.timeline] + [start])
        for k in range(int((last - start) // width_s) + 1):
            low, high = start + k * width_s, start + (k + 1) * width_s
            done = [ms for t, ms in self.timeline if low <= t < high and ms is not None]
            out.append({"from_s": int(k * width_s), **summary(done),
                        "timeouts": sum(1 for t, ms in self.timeline if low <= t < high and ms is None),
                        "account_get_non_200": sum(1 for t, _ in self.error_times if low <= t < high)})
        return out

    def take(self) -> str | None:
        if not self.idle or len(self.tasks) >= MAX_PROBES_IN_FLIGHT:
            return None
        return self.idle.popleft()

    def watch(self, customer: str, sent_at: float) -> None:
        task = asyncio.create_task(self._watch(customer, sent_at))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _watch(self, customer: str, sent_at: float) -> None:
        before = self.seen.get(customer)
        deadline = sent_at + 30
        try:
            while time.perf_counter() < deadline:
                now = await self.account(customer)
                if now is not None and now != before and (before is None or now[0] > before[0] or now[1] > before[1]):
                    self.latencies.append((time.perf_counter() - sent_at) * 1000)
                    self.timeline.append((sent_at, self.latencies[-1]))
                    self.seen[customer] = now
                    return
                # 10 ms at first, then a tenth of the time waited so far, at most 200 ms: a fine
                # resolution where it matters, and slow answers do not multiply the polling
                await asyncio.sleep(min(0.2, max(0.01, 0.1 * (time.perf_counter() - sent_at))))
            self.timeouts += 1
            self.timeline.append((sent_at, None))
            with contextlib.suppress(Exception):
                self.seen[customer] = await self.account(customer) or before
        finally:
            self.idle.append(customer)


class HttpLoad:
    """Tickets (create → resolve → CSAT) and interactions over POST /v1/events, through the gateway."""

    def __init__(self, http: aiohttp.ClientSession, gateway: str, rng: random.Random, mix: Mix) -> None:
        self.http = http
        self.gateway = gateway
        self.rng = rng
        self.mix = mix
        self.agent = bearer("agent", "agent-bench")
        self.status: Counter = Counter()
        self.failures: list[str] = []
        self.latencies: dict[str, list[float]] = {"create_ticket": [], "resolve": [], "csat": [], "events": []}
        self.accepted: Counter = Counter()
        self.tasks: set[asyncio.Task] = set()

    async def call(self, what: str, method: str, path: str, body, headers: dict[str, str]):
        started = time.perf_counter()
        async with self.http.request(method, self.gateway + path, json=body, headers=headers) as answer:
            payload = await answer.read()
            self.latencies[what].append((time.perf_counter() - started) * 1000)
            self.status[f"{what} {answer.status}"] += 1
            if answer.status >= 400 and len(self.failures) < 10:
                self.failures.append(f"{method} {path} → {answer.status}: {payload[:300].decode(errors='replace')}")
            return answer.status, payload

    def spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def ticket(self) -> None:
        order = self.rng.choice(list(self.mix.paid)[-200:]) if self.mix.paid else None
        customer = order[0] if order else self.rng.choice(self.mix.customers)
        body = {"customer_id": customer, "kind": "complaint", "channel": self.rng.choice(["phone", "chat", "email"]),
                "subject": "The tea arrived damaged", "description": "Box crushed, leaves spilled.",
                "category": self.rng.choice(["product_quality", "delivery", "service_attitude"]),
                "order_id": order[1] if order else None}
        status, payload = await self.call("create_ticket", "POST", "/v1/tickets", body,
                                          {**self.agent, "Idempotency-Key": str(uuid.uuid4())})
        if status not in (200, 201):
            return
        ticket_id = json.loads(payload)["ticket_id"]
        await asyncio.sleep(1.0)
        status, _ = await self.call("resolve", "POST", f"/v1/tickets/{ticket_id}/transitions",
                                    {"status": "resolved", "root_cause": "courier"},
                                    {**self.agent, "Idempotency-Key": str(uuid.uuid4())})
        if status not in (200, 201):
            return
        await self.call("csat", "POST", f"/v1/tickets/{ticket_id}/csat",
                        {"score": self.rng.choice([1, 3, 4, 5, 5]), "comment": "ok"},
                        {**bearer("customer", customer), "Idempotency-Key": str(uuid.uuid4())})

    async def events(self) -> None:
        customer = self.rng.choice(self.mix.customers)
        now = datetime.now(UTC)
        batch = [interaction(customer, kind=self.rng.choice(["page_view", "product_view", "search"]), at=now)
                 .to_structured() for _ in range(5)]
        started = time.perf_counter()
        async with self.http.post(self.gateway + "/v1/events", data=json.dumps(batch, default=str),
                                  headers={**bearer("customer", customer),
                                           "Content-Type": "application/cloudevents-batch+json"}) as answer:
            payload = await answer.read()
            self.latencies["events"].append((time.perf_counter() - started) * 1000)
            self.status[f"events {answer.status}"] += 1
            if answer.status == 202:
                self.accepted[TOPIC_INTERACTIONS] += len(json.loads(payload)["accepted"])
            elif len(self.failures) < 10:
                self.failures.append(f"POST /v1/events → {answer.status}: {payload[:300].decode(errors='replace')}")


async def sample_lag(stack: Stack, http: aiohttp.ClientSession, into: list) -> None:
    """Every 2 s, each consumer's lag (records) from its /metrics, until cancelled."""
    while True:
        with contextlib.suppress(Exception):
            into.append((time.perf_counter(), {n: int((await stack.metrics(http, n))["lag"]) for n in CONSUMERS}))
        await asyncio.sleep(2)


def lag_windows(samples: list[tuple[float, dict[str, int]]], start: float, width_s: float = 10.0) -> list[dict]:
    out: dict[int, dict[str, int]] = {}
    for at, lags in samples:
        window = out.setdefault(int((at - start) // width_s * width_s), dict.fromkeys(lags, 0))
        for name, lag in lags.items():
            window[name] = max(window[name], lag)
    return [{"from_s": k, **v} for k, v in sorted(out.items())]


async def steady(stack: Stack, publisher: Publisher, mix: Mix, probes: Probes, load: HttpLoad,
                 rate: float, seconds: float) -> dict:
    """Phase 1: ``rate`` Kafka events/s, open loop, plus the HTTP load, for ``seconds``."""
    paid_count = 0
    sent_probe: list[tuple[str, float]] = []

    def hook(order):
        nonlocal paid_count
        paid_count += 1
        if paid_count % 10:
            return order
        customer = probes.take()
        if customer is None:
            return order
        # the probe gets a fresh order of its own; the popped one goes back to be paid later
        mix.paid.pop()
        mix.placed.appendleft(order)
        sent_probe.append((customer, 0.0))
        return mix._order(customer)

    started = time.perf_counter()
    sent = 0
    next_ticket = next_events = started
    behind_max = 0
    while (now := time.perf_counter()) < started + seconds:
        due = int((now - started) * rate)
        behind_max = max(behind_max, due - sent)
        wall = datetime.now(UTC)
        while sent < due:
            topic, event = mix.next(wall, paid_hook=hook)
            if sent_probe:
                customer, _ = sent_probe.pop()
                await publisher.send(topic, event)
                probes.watch(customer, time.perf_counter())
            else:
                await publisher.send(topic, event)
            sent += 1
        if now >= next_ticket:
            load.spawn(load.ticket())
            next_ticket += 0.5
        if now >= next_events:
            load.spawn(load.events())
            next_events += 0.5
        if len(publisher.pending) > 2000:
            await publisher.flush()
        await asyncio.sleep(max(0.0, 0.02 - (time.perf_counter() - now)))
    elapsed = time.perf_counter() - started
    await publisher.flush()
    return {"rate_per_s": rate, "seconds": round(elapsed, 1), "kafka_events": sent,
            "achieved_rate_per_s": round(sent / elapsed, 1), "max_events_behind_schedule": behind_max}


async def saturation(stack: Stack, http: aiohttp.ClientSession, publisher: Publisher, mix: Mix, count: int) -> dict:
    """Phase 2: ``count`` mixed Kafka events as fast as possible; time until everything is applied."""
    wall = datetime.now(UTC) - timedelta(minutes=1)
    generated = [(topic, *to_kafka(event)) for topic, event in (mix.next(wall) for _ in range(count))]
    before = await stack.batches(http)
    started = time.perf_counter()
    for topic, key, value, headers in generated:
        await publisher.send_raw(topic, key, value, headers)
        if len(publisher.pending) >= 5000:
            await publisher.flush()
    await publisher.flush()
    published_s = time.perf_counter() - started
    drain = await stack.drained(http, publisher.published, timeout_s=600)
    total_s = time.perf_counter() - started
    return {"kafka_events": count, "publish_s": round(published_s, 2),
            "publish_events_per_s": round(count / published_s), "end_to_end_s": round(total_s, 2),
            "end_to_end_events_per_s": round(count / total_s) if drain["drained"] else None, "drain": drain,
            "consumer_batches": stack.batch_delta(before, await stack.batches(http), total_s)}


async def main(args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-e2e-"))
    stack = Stack(workdir, periodic=args.periodic)
    rng = random.Random(args.seed)
    result: dict = {"date": datetime.now(UTC).date().isoformat(), "cpus": os.cpu_count(),
                    "args": vars(args), "periodic_jobs": PERIODIC if args.periodic else "off"}
    run_started = time.perf_counter()
    try:
        await stack.start()
        result["start_s"] = round(time.perf_counter() - run_started, 1)
        progress("stack up", run_started)
        publisher = Publisher(stack.broker.bootstrap_servers)
        await publisher.producer.start()
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
            # warm-up: the customer base and the probes, each probe with a first paid order
            customers = [f"c-base-{i:06d}" for i in range(args.customers)]
            probe_customers = [f"c-probe-{i:03d}" for i in range(PROBES)]
            long_ago = datetime.now(UTC) - timedelta(days=200)
            for customer in customers + probe_customers:
                await publisher.send(TOPIC_CUSTOMERS, customer_registered(customer, at=long_ago))
            for customer in probe_customers:
                await publisher.send(TOPIC_ORDERS, order_event("paid", customer, f"o-warm-{customer}",
                                                               amount="50.00", at=datetime.now(UTC)))
            await publisher.flush()
            warm = await stack.drained(http, publisher.published, timeout_s=180)
            if not warm["drained"]:
                raise RuntimeError(f"the warm-up did not drain: {warm}")
            probes = Probes(http, stack.url("gateway"), probe_customers)
            for customer in probe_customers:
                probes.seen[customer] = await probes.account(customer)
            if None in probes.seen.values() or any(v == (0, 0) for v in probes.seen.values()):
                raise RuntimeError(f"probe accounts not visible through the gateway: {probes.errors}")
            result["warm_up"] = {"customers": args.customers + PROBES, "drain_s": warm["seconds"]}

            progress(f"warm-up drained in {warm['seconds']} s", run_started)
            mix = Mix(rng, customers)
            load = HttpLoad(http, stack.url("gateway"), rng, mix)
            before, phase_started = await stack.batches(http), time.perf_counter()
            lag_samples: list[tuple[float, dict[str, int]]] = []
            sampler = asyncio.create_task(sample_lag(stack, http, lag_samples))
            result["steady"] = await steady(stack, publisher, mix, probes, load, args.rate, args.seconds)
            for topic, n in load.accepted.items():
                publisher.published[topic] += n  # relayed by the gateway's outbox to the same topics
            progress("steady phase done", run_started)
            drain = await stack.drained(http, publisher.published, timeout_s=120)
            progress(f"lag back to zero: {drain}", run_started)
            sampler.cancel()
            await asyncio.wait_for(asyncio.gather(*load.tasks, *probes.tasks, return_exceptions=True), timeout=60)
            result["steady"]["consumer_batches"] = stack.batch_delta(before, await stack.batches(http),
                                                                     time.perf_counter() - phase_started)
            result["steady"]["order_paid_to_points_visible"] = {**summary(probes.latencies),
                                                                "timeouts_30s": probes.timeouts,
                                                                "account_get": summary(probes.get_latencies),
                                                                "by_10s": probes.windows(phase_started),
                                                                "max_lag_by_10s": lag_windows(lag_samples,
                                                                                              phase_started),
                                                                "non_200": dict(probes.errors)}
            result["steady"]["lag_back_to_zero"] = drain
            result["steady"]["http"] = {
                "status": dict(sorted(load.status.items())),
                "latency": {what: summary(values) for what, values in load.latencies.items()},
                "failures": load.failures,
                "events_accepted_over_http": sum(load.accepted.values()),
            }
            result["memory_after_steady"] = stack.memory()

            if args.saturation_events:
                result["saturation"] = await saturation(stack, http, publisher, mix, args.saturation_events)
            progress(f"saturation: {result.get('saturation')}", run_started)
            result["lag_zero_at_end"] = (await stack.drained(http, publisher.published, timeout_s=60))["drained"]
            result["outbox_backlog_at_end"] = {name: (await stack.metrics(http, name))["outbox"] for name in SERVICES}
            # the scheduled whole-base refreshes that ran beside the load (their failures are error lines)
            result["segment_refreshes_completed"] = int(
                (await stack.metrics(http, "profile")).get("crm_profile_segment_refresh_seconds_count", 0))
            result["memory"] = stack.memory()
        await publisher.producer.stop()
        result["run_s"] = round(time.perf_counter() - run_started, 1)
    except Exception as exc:  # the run is judged and printed all the same
        result["aborted"] = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        await stack.stop()  # the logs are read after the services stopped: their shutdown counts too
        result["errors_in_logs"] = stack.logged_errors()
        result["error_lines"] = sum(found["lines"] for found in result["errors_in_logs"].values())
        result["failed"] = verdict(result["errors_in_logs"], result.get("aborted"))
        if args.keep_logs:
            for name in SERVICES:
                with contextlib.suppress(OSError):
                    shutil.copy(workdir / f"{name}.log", Path(args.keep_logs) / f"e2e-{name}.log")
        shutil.rmtree(workdir, ignore_errors=True)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="Kafka events per second in phase 1")
    parser.add_argument("--seconds", type=float, default=60, help="length of phase 1")
    parser.add_argument("--saturation-events", type=int, default=100_000, help="Kafka events in phase 2 (0: skip)")
    parser.add_argument("--customers", type=int, default=2000, help="customers registered before phase 1")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--no-periodic", dest="periodic", action="store_false",
                        help="diagnosis: keep the periodic jobs from running during the bench")
    parser.add_argument("--keep-logs", default=None, help="copy the services' logs into this folder")
    outcome = asyncio.run(main(parser.parse_args()))
    print(json.dumps(outcome))
    sys.exit(1 if outcome["failed"] else 0)
