"""Churn benchmark: refit and full rescoring time on a big shop, and the latency from an order event to a new score.

    python bench/churn.py [--customers 100000] [--seed 7] [--events 2000] [--rate 100] [--wait-s 120]

In one run, against the churn service as a process:

(a) **seed**: ``synthetic_shop(--customers, now=now, seed=--seed)`` (tests/harness/shop.py: a shop
    whose churners are known) is generated in this process and written straight into the service's
    database with ``copy_into_churn_database`` (COPY into churn_orders, churn_activity, churn_tickets,
    churn_csat), then ANALYZEd (autovacuum would, a little later) → seconds for each step and the row
    counts read back from the database (customers with an order, orders, interaction-days, tickets,
    ratings);
(b) **refit**: ``POST /v1/churn/model/refit`` (a supervisor; the client waits up to --refit-timeout-s,
    900 s) answers when the model is fitted, stored and every customer rescored → the request's wall
    time, the service's own ``duration_s`` (the fit, loading the three history snapshots included; its
    two parts, load and numerics, from the service's own ``churn model refitted`` log line) and
    ``rescore_s``; the model's kind, the backtest method and the holdout figures (AUC, precision at
    the top 10 %, calibration error) from its report; the service's CPU seconds and its peak RSS
    during the request (psutil, sampled every 0.25 s);
(c) **full rescoring rate**: ``rescored / rescore_s`` of that first refit, where nobody had a score
    yet, so every customer's level is new and each one queues a ``crm.churn.risk.changed`` event in
    the outbox; then, once the outbox relay has published those (its drain time is reported), a second
    refit right after, where most levels are unchanged and few events are queued → both, labelled;
(d) **event → new score**: ``commerce.order.paid`` events for --events distinct customers of the
    shop (a seeded random sample of those with an order), published on commerce.orders with the
    benchmark's own producer at --rate per second, open loop: event i is due at start + i/rate and is
    sent then, whatever the service is doing; the wall-clock send time is recorded per customer. The
    database is polled (every 10 ms, while sending and up to --wait-s after the last send) until each
    of those customers' ``churn_scores.scored_at`` is later than its send time. Two latencies per
    event, both from this machine's clock:
      - ``scored``: scored_at − send time. scored_at is the service's ``datetime.now()`` taken in
        ``Scorer.rescore`` inside the consumer's transaction, after the inbox claim and the order's
        INSERT and *before* the feature query, the scoring, the score upsert, the outbox insert and
        the commit: this figure leaves out the end of the transaction;
      - ``visible``: when this benchmark's poll first saw the new row (committed) − send time: the
        whole path, plus up to one poll interval and the poll query itself.
    → p50/p99/max ms of each, how many were seen, the achieved send rate (events/s) and the rate at
    which the new scores arrived, the consumer's mean batch size and batch time during the phase
    (its /metrics), and one ``GET /v1/churn/customers/{id}`` as a check (the new model's version, a
    scored_at after the send);
(e) the service's RSS at the end (psutil), MB.

The service runs with REFIT_FIRST_DELAY_S=3600 (its own scheduled refit stays out of the way),
METRICS_REFRESH_S=3600 (its per-level metric snapshot, a GROUP BY over churn_scores, runs once at
start and not again during the run) and LOG_LEVEL=INFO (for that log line; nothing on the event path
logs at INFO). Phase's warm-up event (one ``commerce.order.paid`` for customer
``warm-up``, so the consumer has joined and is warm) is removed from the history again before the
seed, so the refits see exactly the shop.

Uses bench/backbone.py's stack: an embedded PostgreSQL with fsync on (or DATABASE_URL's server), a
fresh Tansu and the churn service as a process; the HTTP client is aiohttp, in this process. Prints
one JSON line on stdout; logs go to stderr. The figures of this small shared 2-core machine are noisy:
the service, PostgreSQL, Tansu and this client share the cores (load averages are in the output).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import re
import sys
import tempfile
import time
import uuid
from contextlib import asynccontextmanager
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
from crm_shared.events.catalogue import TOPIC_ORDERS  # noqa: E402
from crm_shared.events.envelope import to_kafka  # noqa: E402
from crm_shared.settings import DEV_SECRET  # noqa: E402

from bench.backbone import Phase, postgres_server  # noqa: E402
from bench.stats import quantile  # noqa: E402
from tests.harness.events import order_event  # noqa: E402
from tests.harness.shop import copy_into_churn_database, synthetic_shop  # noqa: E402

_codec = IdentityCodec(DEV_SECRET, ttl_s=7200)
SUPERVISOR = {IDENTITY_HEADER: _codec.encode(Identity(subject="sup-bench", role=Role.SUPERVISOR), "churn")}
READER = {IDENTITY_HEADER: _codec.encode(Identity(subject="agent-bench", role=Role.AGENT), "churn")}
HISTORY_TABLES = ("churn_orders", "churn_activity", "churn_tickets", "churn_csat")
POLL_S = 0.01

# The customers (of those sent) whose score is newer than their event's send time.
NEWLY_SCORED = """
    SELECT s.customer_id, s.scored_at, s.model_version
    FROM churn_scores s JOIN unnest($1::text[], $2::timestamptz[]) AS u(customer_id, sent_at) USING (customer_id)
    WHERE s.scored_at > u.sent_at
"""


def log(message: str) -> None:
    print(f"[bench/churn {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class ChurnPhase(Phase):
    """bench/backbone.py's Phase (a fresh database, a fresh Tansu, one service process) for the churn
    service, with an aiohttp session for its API; the warm-up's customer is removed afterwards."""

    service = "churn"
    # LOG_LEVEL=INFO for the refit's own log line (its load and fit times); the service logs little else at INFO
    extra_env: ClassVar[dict[str, str]] = {"REFIT_FIRST_DELAY_S": "3600", "METRICS_REFRESH_S": "3600",
                                           "LOG_LEVEL": "INFO"}
    refit_timeout_s: float = 900  # the refit request answers when everybody is rescored

    async def warm_up(self) -> None:
        self.http = aiohttp.ClientSession(f"http://127.0.0.1:{self.port}",
                                          timeout=aiohttp.ClientTimeout(total=self.refit_timeout_s))
        await super().warm_up()  # one order.paid applied: the consumer has joined and is warm
        for table in ("churn_orders", "churn_scores"):
            await self.db.execute(f"DELETE FROM {table} WHERE customer_id = 'warm-up'")

    async def __aexit__(self, *exc) -> None:
        await self.http.close()
        await super().__aexit__(*exc)

    async def call(self, method: str, path: str, headers: dict, expect: int = 200) -> dict:
        async with self.http.request(method, path, headers=headers) as response:
            text = await response.text()
            if response.status != expect:
                raise RuntimeError(f"{method} {path}: {response.status} {text[:500]}")
            return orjson.loads(text) if text else {}

    async def metric(self, name: str) -> float:
        """The sum of one metric's samples in the service's /metrics."""
        async with self.http.get("/metrics", timeout=aiohttp.ClientTimeout(total=30)) as response:
            text = await response.text()
        return sum(float(m.group(2)) for m in re.finditer(rf"^{re.escape(name)}(\{{.*\}})? (\S+)$", text, re.M))

    def refit_log(self, version: str) -> dict:
        """The service's own ``churn model refitted`` log line of a refit (load_s, fit_s, rescore_s)."""
        for line in (self.workdir / "service.log").read_text(errors="replace").splitlines():
            if '"churn model refitted"' in line and version in line:
                try:
                    return orjson.loads(line)
                except orjson.JSONDecodeError:
                    return {}
        return {}

    def cpu_s(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    async def outbox_backlog(self) -> int:
        return await self.db.fetchval("SELECT count(*) FROM outbox")

    async def wait_outbox_empty(self, timeout_s: float = 600) -> float:
        started = time.perf_counter()
        while backlog := await self.outbox_backlog():
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"the outbox did not drain in {timeout_s} s ({backlog} rows left)")
            await asyncio.sleep(0.1)
        return time.perf_counter() - started


@asynccontextmanager
async def peak_rss(phase: ChurnPhase):
    """The service's peak RSS (MB) while the block runs, sampled every 0.25 s: ``peak["mb"]``."""
    peak = {"mb": phase.rss_mb()}

    async def sample() -> None:
        while True:
            peak["mb"] = max(peak["mb"], phase.rss_mb())
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    try:
        yield peak
    finally:
        sampler.cancel()
        peak["mb"] = max(peak["mb"], phase.rss_mb())


# -- (a) the seed ------------------------------------------------------------------------------------

async def seed(phase: ChurnPhase, customers: int, seed_: int, now: datetime) -> tuple[dict, list[str]]:
    """Generate the shop, COPY it into the service's database; returns the figures and the customers
    with an order (the candidates for the events of (d))."""
    log(f"generating a synthetic shop of {customers} customers (seed {seed_})")
    started = time.perf_counter()
    shop = await asyncio.to_thread(synthetic_shop, customers, now=now, seed=seed_)
    generated = time.perf_counter() - started
    log(f"generated in {generated:.1f} s: {len(shop.orders)} orders, {len(shop.interactions)} interactions, "
        f"{len(shop.tickets)} tickets; copying")
    started = time.perf_counter()
    await copy_into_churn_database(phase.db, shop)
    copied = time.perf_counter() - started
    buyers = sorted({customer_id for customer_id, _, _, _ in shop.orders})
    dropping = sum(1 for d in shop.dropped_at.values() if d is not None)
    del shop
    gc.collect()
    started = time.perf_counter()
    await phase.db.execute(f"ANALYZE {', '.join(HISTORY_TABLES)}")
    analyzed = time.perf_counter() - started
    rows = {table: await phase.db.fetchval(f"SELECT count(*) FROM {table}") for table in HISTORY_TABLES}
    figures = {
        "customers": customers, "seed": seed_, "generate_seconds": round(generated, 1),
        "copy_seconds": round(copied, 1), "analyze_seconds": round(analyzed, 1),
        "customers_with_orders": await phase.db.fetchval("SELECT count(DISTINCT customer_id) FROM churn_orders"),
        "orders": rows["churn_orders"], "interaction_days": rows["churn_activity"],
        "tickets": rows["churn_tickets"], "csat_ratings": rows["churn_csat"],
        "customers_dropping_out": dropping,  # the shop's truth: half of them drop out at some moment
        "database_mb": round(await phase.db.fetchval("SELECT pg_database_size(current_database())") / 2**20, 1)}
    return figures, buyers


# -- (b), (c) refits ---------------------------------------------------------------------------------

async def refit(phase: ChurnPhase, label: str) -> dict:
    log(f"refit ({label})")
    cpu_before = phase.cpu_s()
    async with peak_rss(phase) as peak:
        started = time.perf_counter()
        answer = await phase.call("POST", "/v1/churn/model/refit", SUPERVISOR)
        wall = time.perf_counter() - started
    report = answer["report"]
    holdout = report.get("holdout") or {}
    logged = phase.refit_log(answer["version"])
    result = {
        "wall_seconds": round(wall, 2), "fit_seconds": answer["duration_s"], "rescore_seconds": answer["rescore_s"],
        # the fit's two parts, from the service's log line: the three history snapshots read, the numerics
        "fit_load_seconds": logged.get("load_s"), "fit_numerics_seconds": logged.get("fit_s"),
        "rescored": answer["rescored"], "level_changes": answer["level_changes"],
        "rescored_per_s": round(answer["rescored"] / answer["rescore_s"]) if answer["rescore_s"] else None,
        "version": answer["version"], "kind": answer["kind"], "method": report.get("method"),
        "model_customers": report.get("customers"),
        "holdout": {key: None if holdout.get(key) is None else round(holdout[key], 4)
                    for key in ("auc", "precision_at_top_10pct", "calibration_error")} if holdout else None,
        "training": report.get("training"),
        "service_cpu_seconds": round(phase.cpu_s() - cpu_before, 1), "service_rss_mb_peak": round(peak["mb"], 1),
        "outbox_rows_after": await phase.outbox_backlog()}
    log(f"refit ({label}): {wall:.1f} s wall, fit {answer['duration_s']} s, rescore {answer['rescore_s']} s, "
        f"{answer['rescored']} rescored, {answer['level_changes']} level changes, holdout {result['holdout']}")
    return result


# -- (d) event → new score ---------------------------------------------------------------------------

def _stats(values: list[float]) -> dict:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    if len(values) == 1:
        return {"p50_ms": round(values[0], 1), "p99_ms": round(values[0], 1), "max_ms": round(values[0], 1)}
    return {"p50_ms": round(quantile(values, 0.50), 1), "p99_ms": round(quantile(values, 0.99), 1),
            "max_ms": round(max(values), 1)}


async def event_latency(phase: ChurnPhase, customer_ids: list[str], rate: float, wait_s: float,
                        model_version: str) -> dict:
    log(f"publishing {len(customer_ids)} order.paid events at {rate}/s, one per customer")
    sent_at: dict[str, datetime] = {}
    seen: dict[str, tuple[datetime, datetime, str]] = {}  # customer → (scored_at, seen at, model version)
    send_lag: list[float] = []
    sending_done = asyncio.Event()
    metric_names = ("crm_consumer_batch_size_sum", "crm_consumer_batch_size_count",
                    "crm_consumer_batch_duration_seconds_sum")
    before = [await phase.metric(name) for name in metric_names]

    async def poll() -> None:
        deadline = None
        while True:
            pending = [c for c in sent_at if c not in seen]
            if pending:
                rows = await phase.db.fetch(NEWLY_SCORED, pending, [sent_at[c] for c in pending])
                observed = datetime.now(UTC)
                for row in rows:
                    seen[row["customer_id"]] = (row["scored_at"], observed, row["model_version"])
            if sending_done.is_set():
                if len(seen) == len(sent_at):
                    return
                deadline = deadline or time.perf_counter() + wait_s
                if time.perf_counter() > deadline:
                    return
            await asyncio.sleep(POLL_S)

    poller = asyncio.create_task(poll())
    futures = []
    start = last_send = time.perf_counter() + 0.1
    started_wall = None
    try:
        for i, customer_id in enumerate(customer_ids):
            due = start + i / rate
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            send_lag.append((time.perf_counter() - due) * 1000)
            now = datetime.now(UTC)
            event = order_event("paid", customer_id, f"o-bench-{i}-{uuid.uuid4().hex[:8]}",
                                amount=f"{20 + i % 380}.{i % 100:02d}", at=now)
            key, value, headers = to_kafka(event)
            sent_at[customer_id] = datetime.now(UTC)
            started_wall = started_wall or sent_at[customer_id]
            futures.append(await phase.producer.send(TOPIC_ORDERS, value=value, key=key, headers=headers))
        last_send = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*futures), 60)
    finally:
        sending_done.set()
    await asyncio.wait_for(poller, wait_s + 60)
    sending_s = last_send - start
    after = [await phase.metric(name) for name in metric_names]
    batch_sum, batches, batch_seconds = (a - b for a, b in zip(after, before, strict=True))

    scored = [(seen[c][0] - sent_at[c]).total_seconds() * 1000 for c in seen]
    visible = [(seen[c][1] - sent_at[c]).total_seconds() * 1000 for c in seen]
    last_scored = max((s for s, _, _ in seen.values()), default=None)
    check = None
    if customer_ids:
        first = customer_ids[0]
        answer = await phase.call("GET", f"/v1/churn/customers/{first}", READER)
        check = {"customer_id": first, "level": answer["level"], "score": round(answer["score"], 4),
                 "model_version_is_refit2": answer["model_version"] == model_version,
                 "scored_after_send": datetime.fromisoformat(answer["scored_at"]) > sent_at[first]}
    log(f"seen {len(seen)} of {len(sent_at)} new scores")
    return {
        "events": len(sent_at), "rate_per_s": rate,
        "achieved_send_per_s": round((len(sent_at) - 1) / sending_s, 1) if len(sent_at) > 1 and sending_s else None,
        "client_send_lag_ms_p99": round(quantile(send_lag, 0.99), 1) if len(send_lag) > 1 else None,
        "seen": len(seen), "missing": len(sent_at) - len(seen), "wait_s_bound": wait_s,
        "scored_latency": _stats(scored), "visible_latency": _stats(visible),
        "scored_per_s": round(len(seen) / (last_scored - started_wall).total_seconds(), 1)
        if seen and last_scored > started_wall else None,
        "scored_by_refit2_model": sum(1 for _, _, v in seen.values() if v == model_version),
        "consumer_batches": int(batches),
        "consumer_mean_batch": round(batch_sum / batches, 1) if batches else None,
        "consumer_mean_batch_ms": round(batch_seconds / batches * 1000, 1) if batches else None,
        "outbox_rows_after": await phase.outbox_backlog(), "check": check}


# -- the run -----------------------------------------------------------------------------------------

async def main(args: argparse.Namespace) -> dict:
    # the shared helpers log through structlog, by default on stdout: keep stdout for the figures
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-churn-"))
    server_url, postgres = postgres_server(workdir, fast=False)
    result: dict = {"bench": "churn", "customers": args.customers, "seed": args.seed, "events": args.events,
                    "rate_per_s": args.rate, "cpus": os.cpu_count(), "load_avg_1m_start": round(os.getloadavg()[0], 2)}
    try:
        phase = ChurnPhase(server_url, workdir, noop=False)
        phase.refit_timeout_s = args.refit_timeout_s
        async with phase:
            log(f"service up on port {phase.port} (logs in {workdir})")
            result["service_rss_mb_start"] = round(phase.rss_mb(), 1)
            result["seed_figures"], buyers = await seed(phase, args.customers, args.seed, datetime.now(UTC))

            first = result["refit1"] = await refit(phase, "first: every level new")
            log(f"waiting for the outbox relay to publish {first['outbox_rows_after']} risk.changed events")
            first["outbox_drain_seconds"] = round(await phase.wait_outbox_empty(args.refit_timeout_s), 1)
            second = result["refit2"] = await refit(phase, "second, right after: most levels unchanged")
            second["outbox_drain_seconds"] = round(await phase.wait_outbox_empty(args.refit_timeout_s), 1)
            result["full_rescoring_per_s"] = {"first_refit_every_level_new": first["rescored_per_s"],
                                              "second_refit_most_levels_unchanged": second["rescored_per_s"]}

            picked = random.Random(args.seed).sample(buyers, min(args.events, len(buyers)))
            del buyers
            result["event_to_score"] = await event_latency(phase, picked, args.rate, args.wait_s, second["version"])
            result["service_rss_mb_end"] = round(phase.rss_mb(), 1)
    finally:
        if postgres is not None:
            postgres.stop()
    result["database"] = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded (fsync on)"
    result["broker"] = "embedded tansu"
    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000, help="customers of the synthetic shop")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic shop and of the event sample")
    parser.add_argument("--events", type=int, default=2_000, help="order.paid events for (d), one per customer")
    parser.add_argument("--rate", type=float, default=100, help="events per second for (d), open loop")
    parser.add_argument("--wait-s", type=float, default=120,
                        help="how long (d) waits after its last send for the remaining new scores")
    parser.add_argument("--refit-timeout-s", type=float, default=900,
                        help="the refit request's client timeout, and the bound of each outbox drain")
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
