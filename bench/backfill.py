"""Backfill benchmark: `crm import` of a shop's order history, until profile and loyalty caught up.

    python bench/backfill.py [--customers 20000] [--orders-each 5]

Writes a CSV of ``customers × orders_each`` orders (tests/harness/history.py: the last 90 days,
most older ones completed), starts a fresh broker with the profile and loyalty services as real
processes on their own databases, then times:

- ``import_s``: `crm import FILE.csv --no-progress` as a user runs it (validation of every row,
  then publishing until the broker acknowledged every event; interpreter start included);
- ``profile_caught_up_s`` / ``loyalty_caught_up_s``: from the start of the import until the
  service's inbox holds every order event of the file (its transaction committed);
→ orders/s and events/s end to end (the slower service). Prints one JSON line.
Uses bench/backbone.py's embedded PostgreSQL (or DATABASE_URL's server) and embedded Tansu.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._stack import running_services  # noqa: E402
from tests.harness.history import write_order_history  # noqa: E402

SERVICES = ("profile", "loyalty")
ORDER_EVENTS = "SELECT count(*) FROM inbox WHERE event_type LIKE 'commerce.order.%'"


async def main(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="crm-bench-backfill-") as tmp:
        workdir = Path(tmp)
        rows = write_order_history(workdir / "orders.csv", customers=args.customers, orders_each=args.orders_each)
        events = len(rows) + sum(1 for r in rows if r["completed_at"])
        async with running_services(SERVICES, workdir) as stack:
            env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.broker.bootstrap_servers}
            t0 = time.perf_counter()
            importer = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "crm_shared.cli", "import", str(workdir / "orders.csv"), "--no-progress",
                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            caught_up: dict[str, float] = {}

            async def watch(name: str, db) -> None:
                while await db.fetchval(ORDER_EVENTS) < events:  # noqa: ASYNC110 - polling another process
                    await asyncio.sleep(0.05)
                caught_up[name] = time.perf_counter() - t0

            watchers = [asyncio.create_task(watch(service.name, service.db)) for service in stack.services]
            _out, err = await importer.communicate()
            import_s = time.perf_counter() - t0
            if importer.returncode != 0:
                raise SystemExit(err.decode())
            await asyncio.wait_for(asyncio.gather(*watchers), timeout=1800)
    slowest = max(caught_up.values())
    return {"bench": "backfill", "orders": len(rows), "events": events, "import_s": round(import_s, 2),
            "import_events_per_s": round(events / import_s),
            **{f"{name}_caught_up_s": round(caught_up[name], 2) for name in SERVICES},
            "orders_per_s_end_to_end": round(len(rows) / slowest), "events_per_s_end_to_end": round(events / slowest)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--orders-each", type=int, default=5)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
