"""A real churn service on a fresh database and broker, and helpers to drive it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from crm_shared.auth import Identity, Role

from tests.harness.infra import Broker, Database, ServiceProcess, wait_until
from tests.harness.shop import Shop, copy_into_churn_database

SUPERVISOR = Identity(subject="sup-1", role=Role.SUPERVISOR)
NOW = datetime.now(UTC)


@dataclass
class Churn:
    service: ServiceProcess
    database: Database
    broker: Broker

    async def seed(self, shop: Shop) -> None:
        conn = await asyncpg.connect(self.database.dsn)
        try:
            await copy_into_churn_database(conn, shop)
        finally:
            await conn.close()

    async def refit(self) -> dict[str, Any]:
        async with self.service.client(SUPERVISOR) as http:
            answer = await http.post("/v1/churn/model/refit", timeout=120)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def score(self, customer_id: str) -> dict[str, Any] | None:
        async with self.service.client() as http:
            answer = await http.get(f"/v1/churn/customers/{customer_id}")
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def applied(self, count: int, timeout_s: float = 60) -> None:
        async def done() -> bool:
            return (await self.service.metric("crm_events_applied_total")
                    + await self.service.metric("crm_events_duplicate_total")) >= count
        await wait_until(done, timeout_s=timeout_s, what=f"{count} events applied")


@pytest.fixture
def churn(broker, make_database, start_service) -> Churn:
    database = make_database("churn")
    return Churn(start_service("churn", database), database, broker)
