"""A real campaigns service on a fresh database, the people who call it, and helpers to seed the
tables it reads (the members' projection, contacts, messages, conversions) directly: they are this
service's own, filled in production by its consumers and its planner."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from crm_shared.auth import Identity, Role

from tests.harness.infra import Database, ServiceProcess

MARKETER = Identity(subject="marketer-1", role=Role.MARKETER)
SUPERVISOR = Identity(subject="sup-1", role=Role.SUPERVISOR)
AGENT = Identity(subject="agent-1", role=Role.AGENT)
APPROVAL_AUDIENCE_SIZE = 3


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


@dataclass
class Campaigns:
    service: ServiceProcess
    database: Database

    def client(self, identity: Identity | None = MARKETER) -> httpx.AsyncClient:
        return self.service.client(identity)

    async def post(self, path: str, body: Mapping[str, Any] | None = None, identity: Identity = MARKETER,
                   **headers: str) -> httpx.Response:
        async with self.client(identity) as http:
            return await http.post(path, json=body, headers={**key(), **headers})

    async def created(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        answer = await self.post(path, body)
        assert answer.status_code == 201, answer.text
        return answer.json()

    async def insert(self, table: str, rows: list[Mapping[str, Any]]) -> None:
        """Rows straight into one of the service's tables (column names from the first row)."""
        columns = list(rows[0])
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
               f"VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})")
        conn = await asyncpg.connect(self.database.dsn)
        try:
            await conn.executemany(sql, [tuple(r[c] for c in columns) for r in rows])
        finally:
            await conn.close()


@pytest.fixture
def campaigns(make_database, start_service) -> Campaigns:
    database = make_database("campaigns")
    # A low approval threshold, so a handful of seeded members is "a large audience"; the planner
    # stays idle (these tests drive definitions and read results, they do not send).
    service = start_service("campaigns", database, APPROVAL_AUDIENCE_SIZE=str(APPROVAL_AUDIENCE_SIZE),
                            PLANNER_INTERVAL_S="3600", WORKER_INTERVAL_S="3600")
    return Campaigns(service, database)
