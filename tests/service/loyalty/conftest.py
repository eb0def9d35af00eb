"""A real loyalty service on a fresh database and broker, and helpers to drive it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_ORDERS
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import order_event
from tests.harness.infra import Broker, Database, ServiceProcess, wait_until

SUPERVISOR = Identity(subject="sup-1", role=Role.SUPERVISOR)
NOW = datetime.now(UTC).replace(microsecond=0)


def items(*lines: tuple[str, str, int, str]) -> list[dict[str, Any]]:
    return [{"sku": sku, "category": category, "quantity": quantity, "unit_price": price}
            for sku, category, quantity, price in lines]


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


@dataclass
class Loyalty:
    service: ServiceProcess
    database: Database
    broker: Broker

    async def publish(self, topic: str, *events: CloudEvent) -> None:
        await self.broker.publish(topic, list(events))

    async def orders(self, *events: CloudEvent) -> None:
        await self.publish(TOPIC_ORDERS, *events)

    async def applied(self, count: int) -> None:
        """Wait until the consumer has applied (or skipped as duplicates) this many events in all."""
        async def done() -> bool:
            applied = await self.service.metric("crm_events_applied_total")
            duplicate = await self.service.metric("crm_events_duplicate_total")
            return applied + duplicate >= count
        await wait_until(done, what=f"{count} events applied")

    async def account(self, customer: str, identity: Identity | None = None) -> dict[str, Any]:
        async with self.service.client(identity or SUPERVISOR) as http:
            response = await http.get(f"/v1/loyalty/accounts/{customer}")
        assert response.status_code == 200, response.text
        return response.json()

    async def ledger(self, customer: str) -> list[dict[str, Any]]:
        async with self.service.client(SUPERVISOR) as http:
            response = await http.get(f"/v1/loyalty/accounts/{customer}/ledger", params={"limit": 200})
        assert response.status_code == 200, response.text
        return list(reversed(response.json()["items"]))

    async def job(self, name: str, as_of: datetime) -> dict[str, Any]:
        async with self.service.client(SUPERVISOR) as http:
            response = await http.post(f"/v1/loyalty/jobs/{name}", params={"as_of": as_of.isoformat()})
        assert response.status_code == 200, response.text
        return response.json()

    async def redeem(self, http: httpx.AsyncClient, customer: str, points: int, **body: Any) -> httpx.Response:
        body.setdefault("kind", "gift")
        if body["kind"] == "gift":
            body.setdefault("gift_sku", "MUG-1")
        return await http.post(f"/v1/loyalty/accounts/{customer}/redemptions", json={"points": points, **body},
                               headers=key())

    async def consistent(self) -> None:
        """The cached balances equal the ledger sums and the lot sums, for every account."""
        rows = await self.database.fetch("""
            SELECT a.customer_id, a.available, a.pending, a.debt,
                   COALESCE(l.available, 0) AS l_available, COALESCE(l.pending, 0) AS l_pending,
                   COALESCE(l.debt, 0) AS l_debt,
                   COALESCE(lots.available, 0) AS lots_available, COALESCE(lots.pending, 0) AS lots_pending
            FROM accounts a
            LEFT JOIN (SELECT customer_id, sum(available_delta) AS available, sum(pending_delta) AS pending,
                              sum(debt_delta) AS debt FROM ledger GROUP BY customer_id) l USING (customer_id)
            LEFT JOIN (SELECT customer_id, sum(remaining) FILTER (WHERE state = 'available') AS available,
                              sum(remaining) FILTER (WHERE state = 'pending') AS pending
                       FROM lots GROUP BY customer_id) lots USING (customer_id)""")
        for row in rows:
            assert (row["available"], row["pending"], row["debt"]) == \
                (row["l_available"], row["l_pending"], row["l_debt"]), dict(row)
            assert (row["available"], row["pending"]) == (row["lots_available"], row["lots_pending"]), dict(row)
            assert row["available"] >= 0 and row["pending"] >= 0 and row["debt"] >= 0


@pytest.fixture
def loyalty(broker, make_database, start_service) -> Loyalty:
    database = make_database("loyalty")
    return Loyalty(start_service("loyalty", database), database, broker)


def paid(customer: str, order_id: str, amount: str, *, at: datetime | None = None,
         lines: list[dict[str, Any]] | None = None, event_id: str | None = None) -> CloudEvent:
    return order_event("paid", customer, order_id, amount=amount, at=at or NOW - timedelta(days=1),
                       items=lines, event_id=event_id)


__all__ = ["NOW", "SUPERVISOR", "Loyalty", "items", "key", "paid", "wait_until"]
