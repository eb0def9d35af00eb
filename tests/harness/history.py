"""A shop's order history as a CSV file for ``crm import`` (tests/e2e/test_operations.py, bench/backfill.py)."""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path


def write_order_history(path: Path, *, customers: int, orders_each: int, seed: int = 20261201) -> list[dict]:
    """``customers × orders_each`` orders of the last 90 days, written in shuffled order; returns the rows.

    Most orders older than 10 days are completed (10 days after being paid). Each customer spends
    under 5,000 (the default programme's vip threshold, with 5 orders or fewer), so every order
    earns floor(amount) points at the regular tier. No order is paid within a day of the 7-day
    return window's end, so whether its points are still pending does not race the clock.
    """
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for c in range(customers):
        customer = f"imp-{c:06d}"
        for n in range(orders_each):
            age = rng.choice([rng.uniform(0.5, 6), rng.uniform(8, 90), rng.uniform(8, 90)])
            paid_at = now - timedelta(days=age)
            completed = age > 10 and rng.random() < 0.8
            rows.append({"order_id": f"{customer}-o{n}", "customer_id": customer,
                         "paid_at": paid_at.isoformat(), "total_amount": f"{rng.uniform(10, 899.99):.2f}",
                         "channel": rng.choice(["web", "app", "store"]),
                         "completed_at": (paid_at + timedelta(days=10)).isoformat() if completed else ""})
    rng.shuffle(rows)  # the importer publishes in time order whatever the file's order
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows
