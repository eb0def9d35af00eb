"""Campaigns benchmark: a one-shot e-mail to 100,000 customers, and the latency of a triggered journey.

    python bench/campaigns.py [--customers 100000] [--trigger-rate 50] [--trigger-seconds 20] [--sink count]

The profile, campaigns and gateway services run as real processes (``crm serve``) on their own
fresh databases, with a fresh Tansu; loyalty and tickets are not started (no action here needs them).
The campaigns service reads every contact through the gateway (``GET /v1/profiles/{id}?reveal=true``,
a service token), as in production, and sends over SMTP to a sink in its own process.

Seeding (timed, not counted): ``--customers`` ``commerce.customer.registered`` events (e-mail consent,
locale en) are published; it waits until the profile has them all (its ``customers`` table) and the
campaigns service has projected them all (its ``members``, with the consent), and until both outboxes
are empty, so that nothing of the seeding runs during the measured phases.

(a) **one-shot campaign**: an audience "everyone" (the e-mail consent is implied), a template, a
    one-shot campaign (one message action, control share 0) created through the gateway as a
    marketer; activated it awaits approval (above APPROVAL_AUDIENCE_SIZE), and a supervisor's approval
    starts the clock. Then: the planner's evaluation of the audience (the occurrence's contact count
    and completion, read from the database) → seconds and contacts/s; and the sending, until the sink
    holds one message per customer → messages/s (from the approval, and from the first message).
    The service's own defaults apply (PLANNER_INTERVAL_S 5 s, WORKER_INTERVAL_S 0.5 s,
    DELIVERY_CONCURRENCY 16, SMTP_CONNECTIONS 2); ``--set KEY=VALUE`` overrides a campaigns setting.
    The database's message and contact states and the sink's distinct recipients are checked after.
(b) **trigger latency**: a triggered campaign on ``order_completed`` (one e-mail, control share 0);
    ``commerce.order.completed`` events for distinct seeded customers at ``--trigger-rate`` per second
    for ``--trigger-seconds``, open loop; for each, the time from just before its send to the moment
    the sink received the message for that customer's address (matched by recipient) → p50/p99/max ms;
    also the service's own histogram (event time → accepted by SMTP) as a cross-check.

The gateway's per-client rate limit (RATE_LIMIT_CLIENT, 1200/minute by default) is raised for the run:
the campaigns service is one client and reads one contact per message, so at the default it could not
send more than 20 messages/s (see docs/benchmarks.md). ``--gateway-client-limit`` sets it.

The sink: ``--sink count`` (default) is bench/_mailsink.py, an aiosmtpd server that only appends
"receive time, recipient" to one file per message, a thing outside the system standing for a mail
relay; ``--sink devmail`` is crm_campaigns.devmail (``crm dev``'s sink), which writes and fsyncs one
.eml file per message, so that at 100,000 messages the figures would include the sink's disk.

Uses bench/backbone.py's embedded PostgreSQL (or DATABASE_URL's server) and embedded Tansu. Prints one
JSON line on stdout (with each process's RSS and CPU seconds per phase); progress goes to stderr.
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
from datetime import UTC, datetime
from pathlib import Path

import httpx
import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_shared.bus.kafka import new_producer  # noqa: E402
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS  # noqa: E402
from crm_shared.events.envelope import to_kafka  # noqa: E402

from bench._campaigns_stack import Stack, bearer, cpu_delta, poll, rss, start_stack, stop_stack  # noqa: E402
from bench._mailsink import Sink  # noqa: E402
from bench.backbone import postgres_server  # noqa: E402
from bench.stats import quantile  # noqa: E402
from tests.harness.events import order_event  # noqa: E402

TEMPLATE = {"name": "Bench news", "channel": "email", "contents": {"en": {
    "subject": "News for you, {{ name }}", "text": "Dear {{ name }}, our winter teas are in.\n"
    "Unsubscribe: {{ unsubscribe_url }}", "html": "<p>Dear {{ name }}, our winter teas are in.</p>"}}}


def log(message: str) -> None:
    print(f"[bench/campaigns {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def address(customer_id: str) -> str:
    return f"{customer_id}@example.com"


# -- seeding -----------------------------------------------------------------------------------------

def registration(customer_id: str, at: datetime):
    from crm_shared.events.envelope import CloudEvent
    return CloudEvent(
        id=str(uuid.uuid4()), source="shop/accounts", type="commerce.customer.registered", subject=customer_id,
        time=at, dataschema="https://crm.example/schemas/commerce.customer.registered/v1.json",
        data={"customer_id": customer_id, "email": address(customer_id), "phone": "+86 138 0013 8000",
              "name": f"Customer {customer_id[2:]}", "birthday": "1990-03-04", "registered_at": at.isoformat(),
              "locale": "en", "time_zone": "Asia/Shanghai", "consents": {"email": True, "sms": False}})


async def seed(stack: Stack, producer, customers: list[str]) -> dict:
    log(f"seeding {len(customers)} customers")
    started = time.perf_counter()
    at = datetime.now(UTC).replace(microsecond=0)
    for i in range(0, len(customers), 10_000):
        futures = []
        for customer_id in customers[i:i + 10_000]:
            key, value, headers = to_kafka(registration(customer_id, at))
            futures.append(await producer.send(TOPIC_CUSTOMERS, value=value, key=key, headers=headers))
        await asyncio.gather(*futures)
    published = time.perf_counter() - started
    done: dict[str, float] = {}
    counts = {"profile": "SELECT count(*) FROM customers",
              "campaigns": "SELECT count(*) FROM members WHERE consent_email"}

    async def caught_up(name: str) -> None:
        async def probe() -> bool:
            return await stack.dbs[name].fetchval(counts[name]) >= len(customers)
        await poll(probe, timeout_s=1800, every_s=0.5, what=f"{name} did not get every registration")
        done[name] = time.perf_counter() - started

    await asyncio.gather(caught_up("profile"), caught_up("campaigns"))
    for name in ("profile", "campaigns"):
        async def empty(db=stack.dbs[name]) -> bool:
            return not await db.fetchval("SELECT count(*) FROM outbox")
        await poll(empty, timeout_s=600, every_s=0.5, what=f"{name}'s outbox did not drain")
    await asyncio.sleep(3)  # what the profile announced last reaches the campaigns consumer
    return {"customers": len(customers), "publish_s": round(published, 1),
            **{f"{name}_caught_up_s": round(s, 1) for name, s in done.items()},
            "seconds": round(time.perf_counter() - started, 1)}


# -- (a) the one-shot campaign -----------------------------------------------------------------------

async def call(http: httpx.AsyncClient, path: str, body: dict, headers: dict, expect: int = 201) -> dict:
    answer = await http.post(path, json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
    if answer.status_code != expect:
        raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text[:500]}")
    return answer.json()


async def one_shot(stack: Stack, sink: Sink, http: httpx.AsyncClient, customers: int, timeout_s: float) -> dict:
    marketer, supervisor = bearer("marketer", "marketer-bench"), bearer("supervisor", "sup-bench")
    template = await call(http, "/v1/templates", TEMPLATE, marketer)
    audience = await call(http, "/v1/audiences", {"name": "Everyone", "definition": {}}, marketer)
    campaign = await call(http, "/v1/campaigns", {
        "name": "Winter teas", "kind": "one_shot", "audience_id": audience["audience_id"],
        "template_id": template["template_id"], "actions": [{"kind": "message"}], "rules": {"control_share": 0}},
        marketer)
    campaign_id = campaign["campaign_id"]
    received_before, usage_before = sink.count(), stack.usage(sink)
    # The clock starts with the request that makes the campaign active: the approval above
    # APPROVAL_AUDIENCE_SIZE (10,000), the activation itself below it.
    t0 = time.perf_counter()
    activated = await call(http, f"/v1/campaigns/{campaign_id}/activate", {}, marketer, expect=200)
    log(f"campaign {campaign_id}: {activated['status']}, estimated {activated.get('estimated_size')}")
    if activated["status"] == "awaiting_approval":
        t0 = time.perf_counter()
        await call(http, f"/v1/campaigns/{campaign_id}/approve", {}, supervisor, expect=200)
    db, marks, wall0 = stack.dbs["campaigns"], {}, time.time() - (time.perf_counter() - t0)
    while time.perf_counter() - t0 < timeout_s:
        now = time.perf_counter() - t0
        if "planned_s" not in marks:
            row = await db.fetchrow("SELECT contacts, complete, planned_at FROM occurrences WHERE campaign_id = $1",
                                    campaign_id)
            if row and row["complete"]:
                # planned_at is the planner's clock when its pass began (same host, same clock)
                marks["planner_started_s"] = row["planned_at"].timestamp() - wall0
                marks["planned_s"], marks["planned_contacts"] = now, row["contacts"]
        received = sink.count() - received_before
        if received and "first_message_s" not in marks:
            marks["first_message_s"] = now
        if received >= customers:
            marks["sent_s"] = now
            break
        await asyncio.sleep(0.1)
    usage_after = stack.usage(sink)
    received = sink.count() - received_before
    elapsed = marks.get("sent_s") or time.perf_counter() - t0
    result = {"status_after_activation": activated["status"], "estimated_size": activated.get("estimated_size"),
              **{k: round(v, 2) if isinstance(v, float) else v for k, v in marks.items()},
              "received": received, "complete": received >= customers}
    if "planned_s" in marks:
        planning = result["planning_s"] = round(marks["planned_s"] - marks["planner_started_s"], 2)
        result["planner_contacts_per_s"] = round(marks["planned_contacts"] / max(planning, 0.1))
    result["messages_per_s_from_activation"] = round(received / elapsed, 1)
    if "first_message_s" in marks:
        result["messages_per_s_from_first"] = round(received / max(elapsed - marks["first_message_s"], 1e-3), 1)
    result["messages"] = {r["status"]: r["n"] for r in await db.fetch(
        "SELECT status, count(*) AS n FROM messages WHERE campaign_id = $1 GROUP BY status", campaign_id)}
    result["contacts"] = {f"{r['state']}{':' + r['skip_reason'] if r['skip_reason'] else ''}": r["n"]
                          for r in await db.fetch("SELECT state, skip_reason, count(*) AS n FROM contacts "
                                                  "WHERE campaign_id = $1 GROUP BY 1, 2", campaign_id)}
    result["distinct_recipients"] = sink.distinct_recipients()
    result["cpu_s"] = cpu_delta(usage_before, usage_after)
    result["campaigns_cpu_ms_per_message"] = round(result["cpu_s"]["campaigns"] / max(received, 1) * 1000, 2)
    result["rss_mb"] = rss(usage_after)
    return result


# -- (b) trigger latency -----------------------------------------------------------------------------

async def trigger_latency(stack: Stack, sink: Sink, http: httpx.AsyncClient, producer, customers: list[str],
                          rate: float, seconds: float) -> dict:
    marketer = bearer("marketer", "marketer-bench")
    template = await call(http, "/v1/templates", TEMPLATE, marketer)
    campaign = await call(http, "/v1/campaigns", {
        "name": "Thank you", "kind": "triggered", "template_id": template["template_id"],
        "schedule": {"trigger": "order_completed"}, "actions": [{"kind": "message"}],
        "rules": {"control_share": 0}}, marketer)
    await call(http, f"/v1/campaigns/{campaign['campaign_id']}/activate", {}, marketer, expect=200)
    metric = "crm_campaigns_trigger_latency_seconds"
    before = await service_metric(stack, http, metric)
    total = int(rate * seconds)
    chosen = customers[:total]
    usage_before = stack.usage(sink)
    await asyncio.sleep(1)
    since = time.time()
    sent_at: dict[str, float] = {}
    futures = []
    log(f"trigger: {total} order completions at {rate}/s")
    start = time.perf_counter()
    for i, customer_id in enumerate(chosen):
        if (delay := start + i / rate - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        event = order_event("completed", customer_id, f"o-{customer_id}-{i}", at=datetime.now(UTC))
        key, value, headers = to_kafka(event)
        sent_at[address(customer_id)] = time.time()
        futures.append(await producer.send(TOPIC_ORDERS, value=value, key=key, headers=headers))
    await asyncio.gather(*futures)
    publishing = time.perf_counter() - start

    async def all_in() -> bool:
        return len(sink.received_since(since).keys() & sent_at.keys()) >= total
    try:
        await poll(all_in, timeout_s=120, every_s=0.2, what="trigger messages")
    except TimeoutError:
        log("not every triggered message arrived within 120 s")
    received = sink.received_since(since)
    latencies = [(received[r] - sent) * 1000 for r, sent in sent_at.items() if r in received]
    after = await service_metric(stack, http, metric)
    usage_after = stack.usage(sink)
    count = after["count"] - before["count"]
    return {"rate_per_s": rate, "seconds": seconds, "events": total, "achieved_per_s": round(total / publishing, 1),
            "received": len(latencies), "missing": total - len(latencies),
            "p50_ms": round(quantile(latencies, 0.5), 1), "p99_ms": round(quantile(latencies, 0.99), 1),
            "max_ms": round(max(latencies), 1), "mean_ms": round(sum(latencies) / len(latencies), 1),
            "service_histogram_mean_ms": round((after["sum"] - before["sum"]) / count * 1000, 1) if count else None,
            "cpu_s": cpu_delta(usage_before, usage_after)}


async def service_metric(stack: Stack, http: httpx.AsyncClient, name: str) -> dict[str, float]:
    """``name``'s _sum and _count on the campaigns service's own /metrics (not through the gateway)."""
    text = (await http.get(f"{stack.campaigns_url}/metrics")).text
    values = {}
    for part in ("sum", "count"):
        found = re.search(rf"^{re.escape(name)}_{part}(?:\{{[^}}]*\}})? (\S+)$", text, re.M)
        values[part] = float(found.group(1)) if found else 0.0
    return values


# -- the run -----------------------------------------------------------------------------------------

async def main(args: argparse.Namespace) -> dict:
    # the shared helpers log through structlog, by default on stdout: keep stdout for the figures
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    total = int(args.trigger_rate * args.trigger_seconds)
    if total > args.customers:
        raise SystemExit(f"the trigger phase needs {total} distinct customers; --customers is {args.customers}")
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-campaigns-"))
    result: dict = {"bench": "campaigns", "customers": args.customers, "sink": args.sink,
                    "gateway_client_limit": args.gateway_client_limit, "campaigns_settings": dict(args.set),
                    "cpus": os.cpu_count(), "load_avg_1m_start": round(os.getloadavg()[0], 2)}
    server_url, postgres = postgres_server(workdir)
    sink = Sink(args.sink, workdir)
    try:
        stack = await start_stack(args, workdir, server_url, sink.port)
        log(f"services up (logs in {workdir})")
        producer = new_producer(stack.broker.bootstrap_servers, "bench")
        await producer.start()
        try:
            async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
                customers = [f"b-{i:06d}" for i in range(args.customers)]
                result["seed"] = await seed(stack, producer, customers)
                result["rss_mb_after_seed"] = rss(stack.usage(sink))
                log("one-shot campaign")
                result["one_shot"] = await one_shot(stack, sink, http, args.customers, args.timeout)
                log(f"one-shot: {json.dumps(result['one_shot'])}")
                if total:
                    result["trigger"] = await trigger_latency(stack, sink, http, producer, customers,
                                                              args.trigger_rate, args.trigger_seconds)
                result["rss_mb_end"] = rss(stack.usage(sink))
        finally:
            await producer.stop()
            await stop_stack(stack)
    finally:
        sink.stop()
        if postgres is not None:
            postgres.stop()
    result["database"] = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded"
    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return result


def setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("KEY=VALUE")
    return key, value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000, help="customers seeded; the one-shot audience")
    parser.add_argument("--trigger-rate", type=float, default=50, help="order completions per second in (b)")
    parser.add_argument("--trigger-seconds", type=float, default=20, help="length of (b); 0 skips it")
    parser.add_argument("--sink", choices=("count", "devmail"), default="count",
                        help="count: an SMTP server that only records receipts; devmail: crm dev's .eml writer")
    parser.add_argument("--gateway-client-limit", default="100000000/minute",
                        help="the gateway's RATE_LIMIT_CLIENT (its default, 1200/minute, caps sending at 20/s)")
    parser.add_argument("--set", type=setting, action="append", default=[], metavar="KEY=VALUE",
                        help="a campaigns service setting (e.g. DELIVERY_CONCURRENCY=32); repeatable")
    parser.add_argument("--timeout", type=float, default=3600, help="give up on the one-shot send after this long")
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
