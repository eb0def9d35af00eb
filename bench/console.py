"""Console page-load budget: time to first render and to a complete customer 360, in Chromium,
through the gateway, with every service running.

    python bench/console.py [--customers 20] [--rounds 3]

Profile, loyalty, tickets, churn, campaigns and the gateway run as real processes (``crm serve``) on
fresh databases of their own and a fresh Tansu (bench/backbone.py's PostgreSQL, or DATABASE_URL's
server). ``--customers`` customers are registered and given two paid orders each through the
gateway's ``POST /v1/events`` (a service key's scopes), and the bench waits until the profile and
loyalty have them. Then Debian's Chromium (Playwright, as in the browser tests) signs in as an agent
through the dev sign-in, and for each customer, ``--rounds`` times, opens a new tab on
``/console/#/customers/<id>`` and records, from the navigation's start (``performance.now()``):

- **first render**: the shell has drawn the signed-in chrome and the screen's heading;
- **360 complete**: nothing on the page is loading any more (no ``aria-busy`` element).

The first tab loads the scripts from the network, the others revalidate them (the gateway serves
them with ``no-cache`` and an ETag). Prints one JSON line: p50/p99/max of both, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_shared.auth import mint_user_token  # noqa: E402
from crm_shared.devstack import drop_database, free_port, wait_for_port  # noqa: E402

from bench._stack import NO_TIMERS, serve_process, stop_processes  # noqa: E402
from bench.backbone import create_migrated_database, postgres_server, start_broker_with_topics  # noqa: E402
from bench.stats import quantile  # noqa: E402

AUTH_SECRET = "bench-auth-secret-for-forwarded-identities-0123456789"
JWT_SECRET = "bench-jwt-secret-of-the-identity-provider-0123456789"
PII_KEY = "YmVuY2gtcGlpLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Ng=="
SERVICES = ("profile", "loyalty", "tickets", "churn", "campaigns", "gateway")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FIRST_RENDER = ("() => document.querySelector('#who')?.textContent && document.querySelector('main h1')"
                " ? performance.now() : 0")
COMPLETE = ("() => document.querySelector('main h1') && !document.querySelector('[aria-busy=true]')"
            " && !document.querySelector('main .loading') ? performance.now() : 0")


def token(role: str, subject: str, scopes: tuple[str, ...] = ()) -> str:
    return mint_user_token(secret=JWT_SECRET, issuer="crm-dev", audience="crm", role=role, subject=subject,
                           scopes=scopes, ttl_s=7200)


async def start(workdir: Path, server_url: str) -> tuple[dict, dict, object, str]:
    broker = await start_broker_with_topics(workdir)
    ports = {name: free_port() for name in SERVICES}
    gateway_url = f"http://127.0.0.1:{ports['gateway']}"
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    base.update({"ENVIRONMENT": "test", "LOG_LEVEL": "WARNING", "AUTH_SECRET": AUTH_SECRET, "PII_KEY": PII_KEY,
                 "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, **NO_TIMERS})
    urls = {f"{n.upper()}_URL": f"http://127.0.0.1:{ports[n]}" for n in SERVICES if n != "gateway"}
    extra = {name: {} for name in SERVICES}
    extra["gateway"] = {"JWT_SECRET": JWT_SECRET, **urls}
    extra["campaigns"] = {"GATEWAY_URL": gateway_url, "PUBLIC_BASE_URL": gateway_url, "SMTP_PORT": str(free_port()),
                          "GATEWAY_TOKEN": token("service", "campaigns", ("profiles:read", "pii:read")),
                          **{k: f"bench-{k.lower()}-0123456789abcdef0123456789" for k in
                             ("WEBHOOK_SECRET", "CALLBACK_SECRET", "LINK_KEY")}}
    processes, databases = {}, {}
    for name in SERVICES:
        databases[name] = f"bench_console_{name}_{uuid.uuid4().hex[:6]}"
        dsn = await create_migrated_database(server_url, databases[name], f"crm_{name}:migrations")
        processes[name] = serve_process(name, {**base, **extra[name], "SERVICE_NAME": name, "DATABASE_URL": dsn,
                                               "HTTP_PORT": str(ports[name])}, workdir)
    for name in SERVICES:
        wait_for_port(ports[name], timeout_s=90, process=processes[name])
    return processes, databases, broker, gateway_url


def seed_events(customers: list[str]) -> list[dict]:
    now = datetime.now(UTC)
    events = []
    for i, customer_id in enumerate(customers):
        events.append({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "bench", "subject": customer_id,
                       "type": "commerce.customer.registered", "time": (now - timedelta(days=300)).isoformat(),
                       "data": {"customer_id": customer_id, "email": f"{customer_id}@example.com",
                                "name": f"Bench Customer {i}", "phone": f"+86 138 0000 {i:04d}",
                                "registered_at": (now - timedelta(days=300)).isoformat(), "locale": "zh-CN",
                                "birthday": "1990-03-04", "time_zone": "Asia/Shanghai",
                                "consents": {"email": True, "sms": False}}})
        for n in range(2):
            order_id = f"o-{customer_id}-{n}"
            at = (now - timedelta(days=60 - 20 * n)).isoformat()
            events.append({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "bench", "subject": customer_id,
                           "type": "commerce.order.paid", "time": at,
                           "data": {"order_id": order_id, "customer_id": customer_id, "currency": "CNY",
                                    "total_amount": "188.00", "channel": "app", "occurred_at": at,
                                    "items": [{"sku": "SKU-1", "category": "tea", "quantity": 1,
                                               "unit_price": "188.00"}]}})
    return events


async def seed(gateway_url: str, customers: list[str]) -> None:
    headers = {"Authorization": "Bearer " + token("service", "bench-shop", ("customers:write", "orders:write")),
               "content-type": "application/cloudevents-batch+json"}
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as http:
        answer = await http.post("/v1/events", content=json.dumps(seed_events(customers)), headers=headers)
        answer.raise_for_status()
        agent = {"Authorization": "Bearer " + token("agent", "bench-agent")}
        deadline = time.monotonic() + 120
        for customer_id in customers:
            while True:
                profile = await http.get(f"/v1/profiles/{customer_id}", headers=agent)
                account = await http.get(f"/v1/loyalty/accounts/{customer_id}", headers=agent)
                if profile.status_code == 200 and account.status_code == 200:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{customer_id} not known to the profile and loyalty")
                await asyncio.sleep(0.2)


async def measure(gateway_url: str, customers: list[str], rounds: int) -> dict[str, list[float]]:
    from playwright.async_api import async_playwright

    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    first, complete = [], []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
        signed_in = await context.request.post(f"{gateway_url}/v1/session/dev", data={"role": "agent",
                                                                                      "name": "bench.agent"})
        assert signed_in.ok, await signed_in.text()
        for _ in range(rounds):
            for customer_id in customers:
                page = await context.new_page()
                await page.goto(f"{gateway_url}/console/#/customers/{customer_id}", wait_until="commit")
                first.append(await _when(page, FIRST_RENDER))
                complete.append(await _when(page, COMPLETE))
                await page.close()
        await browser.close()
    return {"first_render": first, "customer_360": complete}


async def _when(page, condition: str) -> float:
    """The page's clock (ms since its navigation started) when ``condition`` first held, checked every frame."""
    handle = await page.wait_for_function(condition, polling="raf", timeout=30_000)
    return float(await handle.json_value())


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(quantile(samples, 0.5), 1), "p99_ms": round(quantile(samples, 0.99), 1),
            "max_ms": round(max(samples), 1), "n": len(samples)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-console-") as folder:
        workdir = Path(folder)
        server_url, postgres = postgres_server(workdir)
        processes, databases, broker = {}, {}, None
        try:
            processes, databases, broker, gateway_url = await start(workdir, server_url)
            customers = [f"c-bench-{uuid.uuid4().hex[:6]}-{i:02d}" for i in range(args.customers)]
            print("seeding", file=sys.stderr)
            await seed(gateway_url, customers)
            print("measuring", file=sys.stderr)
            samples = await measure(gateway_url, customers, args.rounds)
            print(json.dumps({"bench": "console", "customers": args.customers, "rounds": args.rounds,
                              **{name: summary(values) for name, values in samples.items()}}))
        finally:
            stop_processes(processes.values(), 20)
            for database in databases.values():
                await drop_database(server_url, database)
            if broker:
                broker.stop()
            if postgres:
                postgres.stop()


if __name__ == "__main__":
    asyncio.run(main())
