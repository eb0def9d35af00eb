"""Replay benchmark: a transaction log replayed as ``commerce.order.paid`` events with their historic
times, until every consumer of commerce.orders has caught up.

    python bench/replay.py [FILE] [--generate N] [--customers C] [--seed S] [--currency CNY] [--write-only]

FILE is a CSV transaction log, one order per line:

- columns (matched case-insensitively, surrounding spaces ignored):
  customer: ``customer`` or ``customer_id``;
  date: ``date``, ``invoice_date``, ``paid_at`` or ``time`` — an ISO date (``2025-03-01``, midnight
  UTC) or an ISO datetime (``2025-03-01T10:15:00+08:00``; without an offset it is read as UTC);
  amount: ``amount``, ``total`` or ``total_amount`` — a decimal string (``199.90``);
  optional currency: ``currency`` (default ``--currency``);
  optional order id: ``order_id`` or ``order``; without one, each line's order id is derived from
  (line number, customer, date, amount), so replaying the same file again is idempotent.
  Other columns are ignored.
- The header row is optional: if the first row names no customer column, the file is read as
  headerless ``customer,date,amount[,currency]``.
- Lines with the same order id are the same order: the later ones are dropped and counted.

Without FILE, or with ``--generate N``, a synthetic log of N transactions is written first (seeded:
repeat customers with Pareto-distributed activity, Pareto-ish amounts, times over the last two
years; to FILE if given, else to a temporary folder; default 100,000 when FILE is omitted).

The log becomes events the way ``crm import`` builds them (crm_shared.backfill: validation against
the catalogue's OrderData, UUIDv5 event ids from the order id, time order, the CloudEvent ``time`` and
data ``occurred_at`` both the historic time), published with crm_shared.backfill.publish_orders
(keyed by customer, at most IN_FLIGHT sends awaited together) into a fresh broker consumed by every
service that subscribes to commerce.orders (profile, loyalty, churn), each a real process on its own
fresh database with its timers off. Prints one JSON line: publish time and rate, per service the time
from the first send until its inbox holds every order event, orders/s until all caught up, and each
service's RSS at the end. Uses bench/backbone.py's embedded PostgreSQL (or DATABASE_URL's server)
and an embedded Tansu.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_shared.backfill import BackfillError, publish_orders, read_orders  # noqa: E402

from bench._stack import running_services  # noqa: E402

# Every service whose ServiceSpec.subscribes includes commerce.orders (tickets does not).
SERVICES = ("profile", "loyalty", "churn")
PAID_EVENTS = "SELECT count(*) FROM inbox WHERE event_type = 'commerce.order.paid'"
COLUMNS = {
    "customer": ("customer", "customer_id"),
    "date": ("date", "invoice_date", "paid_at", "time"),
    "amount": ("amount", "total", "total_amount"),
    "currency": ("currency",),
    "order": ("order_id", "order"),
}
REQUIRED = ("customer", "date", "amount")


class LogError(ValueError):
    """The transaction log cannot be replayed; the message lists the problems."""


def generate_log(path: Path, transactions: int, *, customers: int | None = None, seed: int = 7) -> None:
    """A synthetic log: ``customer,date,amount`` of ``transactions`` orders over the last 730 days."""
    rng = random.Random(seed)
    customers = customers or max(1, transactions // 5)
    # Activity per customer: Pareto (capped), so most buy a few times and a few buy very often.
    weights, total = [], 0.0
    for _ in range(customers):
        total += min(rng.paretovariate(1.5), 40.0)
        weights.append(total)
    picks = rng.choices(range(customers), cum_weights=weights, k=transactions)
    now = datetime.now(UTC).replace(microsecond=0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("customer", "date", "amount"))
        for customer in picks:
            at = now - timedelta(seconds=rng.randrange(730 * 86_400))
            amount = min(Decimal("19.90") * Decimal(str(rng.paretovariate(1.6))), Decimal("50000"))
            writer.writerow((f"c-{customer:07d}", at.isoformat(), f"{amount:.2f}"))


def _parse_time(value: str) -> datetime:
    value = value.strip()
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _columns(first: list[str]) -> dict[str, int] | None:
    names = [name.strip().lower() for name in first]
    found = {key: next((names.index(a) for a in aliases if a in names), None) for key, aliases in COLUMNS.items()}
    if found["customer"] is None:
        return None  # no header
    if missing := [key for key in REQUIRED if found[key] is None]:
        raise LogError(f"header names no {' / '.join(COLUMNS[missing[0]])} column")
    return {key: index for key, index in found.items() if index is not None}


def to_import_csv(log: Path, out: Path, *, currency: str) -> tuple[int, int]:
    """Rewrite the log in ``crm import``'s columns; returns (orders, duplicate lines dropped)."""
    errors: list[str] = []
    seen: set[str] = set()
    duplicates = 0
    with log.open(newline="", encoding="utf-8-sig") as handle, out.open("w", newline="", encoding="utf-8") as sink:
        reader = csv.reader(handle)
        writer = csv.writer(sink)
        writer.writerow(("order_id", "customer_id", "paid_at", "total_amount", "currency"))
        first = next(reader, None)
        if first is None:
            raise LogError(f"{log}: empty")
        columns = _columns(first)
        rows = reader if columns else [first, *reader]
        columns = columns or {"customer": 0, "date": 1, "amount": 2, "currency": 3}
        for row in rows:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(columns[key] for key in REQUIRED):
                errors.append(f"{log}:{line}: {len(row)} column(s), too few")
                continue
            try:
                customer = row[columns["customer"]].strip()
                paid_at = _parse_time(row[columns["date"]])
                amount_text = row[columns["amount"]].strip()
                try:
                    amount = Decimal(amount_text)
                except InvalidOperation:
                    raise ValueError(f"amount {amount_text!r} is not a decimal") from None
                row_currency = (row[columns["currency"]].strip() if columns.get("currency") is not None
                                and len(row) > columns["currency"] else "") or currency
            except ValueError as exc:
                errors.append(f"{log}:{line}: {exc}")
                continue
            order = row[columns["order"]].strip() if "order" in columns and len(row) > columns["order"] else ""
            if not order:
                digest = hashlib.sha256(f"{line}|{customer}|{paid_at.isoformat()}|{amount}".encode()).hexdigest()
                order = f"replay-{digest[:20]}"
            if order in seen:
                duplicates += 1
                continue
            seen.add(order)
            writer.writerow((order, customer, paid_at.isoformat(), str(amount), row_currency))
    if errors:
        raise LogError("\n".join(errors[:50] + ([f"… and {len(errors) - 50} more"] if len(errors) > 50 else [])))
    return len(seen), duplicates


async def main(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="crm-bench-replay-") as tmp:
        workdir = Path(tmp)
        log = Path(args.file) if args.file else workdir / "transactions.csv"
        if args.generate or not args.file:
            generate_log(log, args.generate or 100_000, customers=args.customers, seed=args.seed)
            if args.write_only and args.file:
                return {"bench": "replay", "written": str(log), "transactions": args.generate or 100_000}
        t_read = time.perf_counter()
        orders, duplicates = to_import_csv(log, workdir / "orders.csv", currency=args.currency)
        events = read_orders(workdir / "orders.csv", default_currency=args.currency)
        read_s = time.perf_counter() - t_read
        async with running_services(SERVICES, workdir) as stack:
            caught_up: dict[str, float] = {}
            t0 = time.perf_counter()

            async def watch(name: str, db) -> None:
                while await db.fetchval(PAID_EVENTS) < orders:  # noqa: ASYNC110 - polling another process
                    await asyncio.sleep(0.1)
                caught_up[name] = time.perf_counter() - t0

            watchers = [asyncio.create_task(watch(service.name, service.db)) for service in stack.services]
            await publish_orders(events, stack.broker.bootstrap_servers, progress=False)
            publish_s = time.perf_counter() - t0
            await asyncio.wait_for(asyncio.gather(*watchers), timeout=3600)
            rss = {service.name: round(service.rss_mb(), 1) for service in stack.services}
    slowest = max(caught_up.values())
    return {"bench": "replay", "orders": orders, "duplicate_lines_dropped": duplicates,
            "first": events[0].time.isoformat(), "last": events[-1].time.isoformat(),
            "read_validate_s": round(read_s, 2), "publish_s": round(publish_s, 2),
            "publish_orders_per_s": round(orders / publish_s),
            **{f"{name}_caught_up_s": round(caught_up[name], 2) for name in SERVICES},
            "all_caught_up_s": round(slowest, 2), "orders_per_s_all_caught_up": round(orders / slowest),
            **{f"{name}_rss_mb": rss[name] for name in SERVICES}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", nargs="?", help="CSV transaction log (default: generate one)")
    parser.add_argument("--generate", type=int, metavar="N", help="write a synthetic log of N transactions first")
    parser.add_argument("--customers", type=int, help="customers in a generated log (default N / 5)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--currency", default="CNY", help="for lines without a currency")
    parser.add_argument("--write-only", action="store_true", help="with --generate: write FILE and stop")
    arguments = parser.parse_args()
    try:
        print(json.dumps(asyncio.run(main(arguments))), flush=True)
    except (LogError, BackfillError) as exc:
        sys.exit(str(exc))
