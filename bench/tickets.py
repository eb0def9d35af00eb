"""Tickets benchmark: creation and listing latency at a fixed rate, and the SLA scheduler over a big backlog.

    python bench/tickets.py [--rate 200] [--seconds 20] [--tickets 100000] [--customers 1000] [--after-seconds 10]

In one run, against the tickets service as a process:

(a) **creation**: two queues (``logistics``: delivery and price, round-robin; ``quality``: product
    quality and service attitude, least-loaded) and 6 agents are set up over HTTP (a supervisor), then
    ``POST /v1/tickets`` (an agent, a fresh ``Idempotency-Key`` each) at ``--rate`` requests/s for
    ``--seconds``, open loop: request i is due at start + i/rate and its latency counts from when it
    was due (no coordinated omission) → p50/p99/max ms, achieved rate, non-201 count; every ticket is
    assigned on the way (priority, SLA clocks in business time, the queue's group row lock);
(b) **listing**: ``GET /v1/tickets?status=active&limit=50`` and ``GET /v1/tickets?customer_id=c-<n>``
    alternating, at the same rate, open loop → p50/p99/max ms, non-200 count;
(c) **SLA scheduler**: ``--tickets`` open tickets written straight into the service's database
    (generate_series; warning and due moments spread over the next 30 days, created in the past,
    assigned to the agents), then ``POST /v1/ticketing/sla-scan?as_of=…`` (a supervisor) timed for
    (1) as_of = now: nothing due; (2) as_of = the moment by which ``--due-share`` (10 %) of the open
    tickets have a warning or breach due; (3) the same as_of again: nothing new (exactly once). The
    events each pass queued are checked against a count made in SQL beforehand, and the outbox relay's
    drain time after (2) is measured;
(d) **after the seed**: (a) and (b) again for ``--after-seconds`` on the big table (0 to skip).

The service runs with SLA_SCAN_FIRST_DELAY_S=3600 (its own scheduler stays out of the way) and
JOBS_ACCEPT_AS_OF=true (the scan accepts ``as_of``). The clients are aiohttp, in this process.

Uses bench/backbone.py's stack: an embedded PostgreSQL (or DATABASE_URL's server), a fresh Tansu
and the tickets service as a process. Prints one JSON line on stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import aiohttp
import orjson
import psutil
import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_shared.auth import IDENTITY_HEADER, Identity, IdentityCodec, Role  # noqa: E402
from crm_shared.settings import DEV_SECRET  # noqa: E402

from bench.backbone import Phase, postgres_server  # noqa: E402
from bench.stats import quantile  # noqa: E402

MIGRATIONS = "crm_tickets:migrations"
CATEGORIES = ("delivery", "product_quality", "price", "service_attitude")
GROUPS = {"logistics": (["delivery", "price"], "round_robin"),
          "quality": (["product_quality", "service_attitude"], "least_loaded")}
AGENTS = {"agent-1": ["logistics"], "agent-2": ["logistics"], "agent-3": ["logistics", "quality"],
          "agent-4": ["quality"], "agent-5": ["quality"], "agent-6": ["quality"]}
ACTIVE = "status IN ('new', 'open', 'pending_customer')"

_codec = IdentityCodec(DEV_SECRET, ttl_s=7200)
AGENT = {IDENTITY_HEADER: _codec.encode(Identity(subject="agent-bench", role=Role.AGENT), "tickets")}
SUPERVISOR = {IDENTITY_HEADER: _codec.encode(Identity(subject="sup-bench", role=Role.SUPERVISOR), "tickets")}


def log(message: str) -> None:
    print(f"[bench/tickets {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def iso(moment: datetime) -> str:
    """For a query string: ``Z``, not ``+00:00`` (a bare ``+`` would arrive as a space)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class TicketsPhase(Phase):
    """bench/backbone.py's Phase (a fresh database, a fresh Tansu, one service process) for the
    tickets service, with an aiohttp session for its API (nothing to consume, so no warm-up)."""

    service = "tickets"
    # the service's own SLA scan would otherwise start 5 s in; the bench runs it by hand
    extra_env: ClassVar[dict[str, str]] = {"SLA_SCAN_FIRST_DELAY_S": "3600", "JOBS_ACCEPT_AS_OF": "true"}

    async def warm_up(self) -> None:
        self.http = aiohttp.ClientSession(f"http://127.0.0.1:{self.port}", timeout=aiohttp.ClientTimeout(total=600),
                                          connector=aiohttp.TCPConnector(limit=200))

    async def __aexit__(self, *exc) -> None:
        await self.http.close()
        await super().__aexit__(*exc)

    async def call(self, method: str, path: str, headers: dict, body: dict | None = None,
                   expect: int = 200) -> dict:
        data = orjson.dumps(body) if body is not None else None
        async with self.http.request(method, path, data=data,
                                     headers={**headers, "content-type": "application/json"}) as response:
            text = await response.text()
            if response.status != expect:
                raise RuntimeError(f"{method} {path}: {response.status} {text[:500]}")
            return orjson.loads(text) if text else {}

    async def metric(self, name: str, *labels: str) -> float:
        """One sample of the service's /metrics (the sum over samples whose labels contain all ``labels``)."""
        async with self.http.get("/metrics") as response:
            text = await response.text()
        pattern = re.compile(rf"^{re.escape(name)}(\{{.*\}})? (\S+)$", re.M)
        return sum(float(m.group(2)) for m in pattern.finditer(text)
                   if all(label in (m.group(1) or "") for label in labels))

    def cpu_s(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    async def wait_outbox_empty(self, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while await self.db.fetchval("SELECT count(*) FROM outbox"):
            if time.monotonic() > deadline:
                raise TimeoutError("the outbox did not drain")
            await asyncio.sleep(0.05)


async def set_up_queues(phase: TicketsPhase) -> None:
    for group_id, (skills, strategy) in GROUPS.items():
        await phase.call("PUT", f"/v1/ticketing/groups/{group_id}", SUPERVISOR,
                         {"group_id": group_id, "name": group_id.title(), "skills": skills, "strategy": strategy})
    for agent_id, groups in AGENTS.items():
        await phase.call("PUT", f"/v1/ticketing/agents/{agent_id}", SUPERVISOR,
                         {"name": agent_id.replace("-", " ").title(), "groups": groups})


# -- open-loop load ----------------------------------------------------------------------------------

Request = tuple[str, str, bytes | None, dict]


async def fixed_rate(phase: TicketsPhase, rate: float, seconds: float, make: Callable[[int], Request],
                     expect: int, route: str) -> dict:
    """Open loop: request i is due at start + i/rate; its latency counts from when it was due."""
    total = int(rate * seconds)
    latencies: list[float] = []
    by_query: dict[str, list[float]] = {}  # the first query parameter's name → latencies
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    send_lag: list[float] = []  # how late this client itself sent (it must stay small to trust the figures)

    async def one(i: int, due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        send_lag.append((time.perf_counter() - due) * 1000)
        method, path, body, headers = make(i)
        try:
            async with phase.http.request(method, path, data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            errors[type(exc).__name__] += 1
        latencies.append(latency := (time.perf_counter() - due) * 1000)
        by_query.setdefault(path.partition("?")[2].partition("=")[0], []).append(latency)

    labels = (f'http_request_method="{make(0)[0]}"', f'http_route="{route}"')
    served_before = [await phase.metric(f"http_server_request_duration_seconds_{x}", *labels)
                     for x in ("sum", "count")]
    cpu_before = phase.cpu_s()
    start = time.perf_counter() + 0.2
    await asyncio.gather(*(one(i, start + i / rate) for i in range(total)))
    elapsed = time.perf_counter() - start
    cpu = phase.cpu_s() - cpu_before
    served = [await phase.metric(f"http_server_request_duration_seconds_{x}", *labels) - before
              for x, before in zip(("sum", "count"), served_before, strict=True)]
    return {"rate_per_s": rate, "seconds": seconds, "requests": total,
            "achieved_per_s": round(total / elapsed, 1),
            "p50_ms": round(quantile(latencies, 0.50), 1), "p99_ms": round(quantile(latencies, 0.99), 1),
            "max_ms": round(max(latencies), 1), "mean_ms": round(sum(latencies) / len(latencies), 1),
            "service_mean_ms": round(served[0] / served[1] * 1000, 1) if served[1] else None,
            f"non_{expect}": sum(n for s, n in statuses.items() if s != expect) + sum(errors.values()),
            "statuses": {str(s): n for s, n in sorted(statuses.items())},
            **({"errors": dict(errors)} if errors else {}),
            "service_cpu_ms_per_request": round(cpu / total * 1000, 2),
            "service_cpu_share": round(cpu / elapsed, 2),  # of one core: the service is one process
            "client_send_lag_ms_p99": round(quantile(send_lag, 0.99), 1),
            **({"by_query": {name: {"p50_ms": round(quantile(values, 0.50), 1),
                                    "p99_ms": round(quantile(values, 0.99), 1), "max_ms": round(max(values), 1)}
                             for name, values in by_query.items()}} if len(by_query) > 1 else {})}


def creations(customers: int, prefix: str) -> Callable[[int], Request]:
    def make(i: int) -> Request:
        body = orjson.dumps({"customer_id": f"c-{i % customers}", "kind": "complaint", "channel": "app",
                             "subject": f"bench ticket {prefix}-{i}", "category": CATEGORIES[i % len(CATEGORIES)]})
        return "POST", "/v1/tickets", body, {**AGENT, "content-type": "application/json",
                                             "Idempotency-Key": f"bench-{prefix}-{i}-{uuid.uuid4().hex}"}
    return make


def listings(customers: int) -> Callable[[int], Request]:
    def make(i: int) -> Request:
        if i % 2 == 0:
            path = "/v1/tickets?status=active&limit=50"
        else:
            path = f"/v1/tickets?customer_id=c-{(i // 2) % customers}"
        return "GET", path, None, AGENT
    return make


async def create_and_list(phase: TicketsPhase, rate: float, seconds: float, customers: int, prefix: str) -> dict:
    log(f"creating tickets at {rate}/s for {seconds} s ({prefix})")
    create = await fixed_rate(phase, rate, seconds, creations(customers, prefix), 201, "/v1/tickets")
    create["assigned"] = await phase.db.fetchval(
        "SELECT count(*) FROM tickets WHERE subject LIKE $1 AND assignee IS NOT NULL", f"bench ticket {prefix}-%")
    await phase.wait_outbox_empty()
    log(f"listing at {rate}/s for {seconds} s ({prefix})")
    listing = await fixed_rate(phase, rate, seconds, listings(customers), 200, "/v1/tickets")
    return {"create": create, "list": listing}


# -- (c) the SLA scheduler ---------------------------------------------------------------------------

# Per priority (urgent, high, normal, low): first-response and resolution targets in hours. Each
# seeded ticket's first warning falls at some moment in [now + 1 h, now + 30 days] (a permutation of
# the ids, so due order is not insertion order); the other moments follow from the targets with the
# warning at 80 % of each (the default policy's ``warning_at``).
SEED = """
INSERT INTO tickets (ticket_id, customer_id, kind, channel, category, subject, priority, status, group_id, assignee,
                     created_by, created_at, first_response_warn_at, first_response_due_at, resolution_warn_at,
                     resolution_due_at, updated_at)
SELECT 'seed-' || i, 's-' || (i % 25000), 'complaint', (ARRAY['phone', 'chat', 'email', 'web', 'app'])[1 + i % 5],
       (ARRAY['delivery', 'product_quality', 'price', 'service_attitude'])[1 + i % 4], 'seeded ticket ' || i,
       (ARRAY['urgent', 'high', 'normal', 'low'])[p], 'open',
       CASE WHEN i % 2 = 0 THEN 'logistics' ELSE 'quality' END,
       CASE WHEN i % 2 = 0 THEN 'agent-' || (1 + (i / 4) % 3) ELSE 'agent-' || (3 + (i / 4) % 4) END,
       'seed', $1::timestamptz - (i % 432000) * interval '1 second',
       w, w + fr * 0.25, w + 0.8 * (res - fr), w + 0.8 * (res - fr) + res * 0.2, $1::timestamptz
FROM generate_series(1, $2::int) AS i,
     LATERAL (SELECT 1 + (i / 3) % 4 AS p) AS pr,
     LATERAL (SELECT $1::timestamptz + interval '1 hour'
                     + ((i::bigint * 7919) % $2::int)::float8 / $2::int * (interval '30 days' - interval '1 hour') AS w,
                     (ARRAY[1, 4, 8, 24])[p] * interval '1 hour' AS fr,
                     (ARRAY[8, 24, 48, 96])[p] * interval '1 hour' AS res) AS m
"""

# What a scan as of $1 should announce, counted independently (the scan's own conditions, in one go).
EXPECTED = f"""
SELECT count(*) FILTER (WHERE fr_warning_sent_at IS NULL AND first_response_warn_at <= $1
                          AND first_response_at IS NULL AND first_response_due_at > $1) AS fr_warning,
       count(*) FILTER (WHERE fr_breached_at IS NULL AND first_response_due_at <= $1
                          AND first_response_at IS NULL) AS fr_breach,
       count(*) FILTER (WHERE res_warning_sent_at IS NULL AND resolution_warn_at <= $1
                          AND resolution_due_at > $1) AS res_warning,
       count(*) FILTER (WHERE res_breached_at IS NULL AND resolution_due_at <= $1) AS res_breach
FROM tickets WHERE {ACTIVE}
"""

MARKED = f"""
SELECT count(*) FILTER (WHERE fr_warning_sent_at IS NOT NULL OR fr_breached_at IS NOT NULL
                          OR res_warning_sent_at IS NOT NULL OR res_breached_at IS NOT NULL) AS tickets,
       count(fr_warning_sent_at) AS fr_warning, count(fr_breached_at) AS fr_breach,
       count(res_warning_sent_at) AS res_warning, count(res_breached_at) AS res_breach
FROM tickets WHERE {ACTIVE}
"""


async def seed(phase: TicketsPhase, count: int) -> dict:
    log(f"seeding {count} open tickets")
    started = time.perf_counter()
    await phase.db.execute(SEED, datetime.now(UTC), count)
    inserted = time.perf_counter() - started
    await phase.db.execute("ANALYZE tickets")  # autovacuum would, a little later
    return {"tickets": count, "insert_seconds": round(inserted, 1),
            "seconds": round(time.perf_counter() - started, 1),
            "open_tickets": await phase.db.fetchval(f"SELECT count(*) FROM tickets WHERE {ACTIVE}")}


async def scan(phase: TicketsPhase, as_of: datetime) -> dict:
    expected = dict(await phase.db.fetchrow(EXPECTED, as_of))
    started = time.perf_counter()
    answer = await phase.call("POST", f"/v1/ticketing/sla-scan?as_of={iso(as_of)}", SUPERVISOR)
    elapsed = time.perf_counter() - started
    return {"as_of": iso(as_of), "seconds": round(elapsed, 3), "events": answer["events"],
            "events_expected": sum(expected.values()), "expected_by_kind": expected}


async def sla_passes(phase: TicketsPhase, due_share: float) -> dict:
    await phase.wait_outbox_empty()
    result: dict = {}
    log("SLA pass 1: nothing due")
    result["pass1_nothing_due"] = await scan(phase, datetime.now(UTC))
    # as_of such that due_share of the open tickets have their first warning (their earliest moment) due
    open_tickets = await phase.db.fetchval(f"SELECT count(*) FROM tickets WHERE {ACTIVE}")
    as_of = await phase.db.fetchval(f"""SELECT first_response_warn_at FROM tickets WHERE {ACTIVE}
                                        ORDER BY first_response_warn_at OFFSET $1 LIMIT 1""",
                                    max(0, round(open_tickets * due_share) - 1))
    log(f"SLA pass 2: {due_share:.0%} of {open_tickets} due as of {iso(as_of)}")
    second = result["pass2_share_due"] = await scan(phase, as_of)
    drain_started = time.perf_counter()
    await phase.wait_outbox_empty()
    drained = time.perf_counter() - drain_started
    # the relay publishes while the scan is still committing its chunks: most is gone by its answer
    second["outbox_drain_seconds"] = round(drained, 2)
    second["outbox_empty_after_scan_start_s"] = round(second["seconds"] + drained, 2)
    marked = dict(await phase.db.fetchrow(MARKED))
    second["tickets_marked"] = marked.pop("tickets")
    second["marked_by_kind"] = marked
    log("SLA pass 3: the same as_of again")
    result["pass3_same_as_of"] = await scan(phase, as_of)
    result["exactly_once"] = (result["pass3_same_as_of"]["events"] == 0
                              and second["events"] == second["events_expected"]
                              and sum(marked.values()) == second["events"])
    return result


# -- the run -----------------------------------------------------------------------------------------

async def main(args: argparse.Namespace) -> dict:
    # the shared helpers log through structlog, by default on stdout: keep stdout for the figures
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-tickets-"))
    server_url, postgres = postgres_server(workdir)
    result: dict = {"bench": "tickets", "rate_per_s": args.rate, "seconds": args.seconds,
                    "customers": args.customers, "seeded_tickets": args.tickets,
                    # anything else running on this small machine (a test suite, another bench) shows here
                    "cpus": os.cpu_count(), "load_avg_1m_start": round(os.getloadavg()[0], 2)}
    try:
        async with TicketsPhase(server_url, workdir, noop=False) as phase:
            log(f"service up on port {phase.port} (logs in {workdir})")
            await set_up_queues(phase)
            result["queues"] = {g: {"skills": s, "strategy": st} for g, (s, st) in GROUPS.items()}
            result["agents"] = len(AGENTS)
            # warm the connections and the service's first-request paths
            await fixed_rate(phase, 50, 1, listings(args.customers), 200, "/v1/tickets")
            result["rss_mb_start"] = round(phase.rss_mb(), 1)
            ab = await create_and_list(phase, args.rate, args.seconds, args.customers, "a")
            result["create"], result["list"] = ab["create"], ab["list"]
            result["rss_mb_after_load"] = round(phase.rss_mb(), 1)

            result["seed"] = await seed(phase, args.tickets)
            result["sla_scan"] = await sla_passes(phase, args.due_share)
            result["rss_mb_after_scan"] = round(phase.rss_mb(), 1)
            if args.after_seconds > 0:
                result["after_seed"] = await create_and_list(phase, args.rate, args.after_seconds,
                                                             args.customers, "d")
            result["rss_mb_end"] = round(phase.rss_mb(), 1)
    finally:
        if postgres is not None:
            postgres.stop()
    result["database"] = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded"
    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="requests per second for (a), (b) and (d)")
    parser.add_argument("--seconds", type=float, default=20, help="length of (a) and of (b)")
    parser.add_argument("--customers", type=int, default=1_000, help="customers the created tickets are spread over")
    parser.add_argument("--tickets", type=int, default=100_000, help="open tickets seeded for the SLA scan (c)")
    parser.add_argument("--due-share", type=float, default=0.1, help="share of open tickets due in scan pass 2")
    parser.add_argument("--after-seconds", type=float, default=10,
                        help="length of (a) and (b) again on the seeded table (0: skip)")
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
