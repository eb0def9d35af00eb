"""A real tickets service on a fresh database and broker, and helpers to drive it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from crm_shared.auth import Identity, Role
from crm_shared.events.envelope import CloudEvent

from tests.harness.infra import Broker, Database, ServiceProcess, wait_until

SUPERVISOR = Identity(subject="sup-1", role=Role.SUPERVISOR)


def customer(customer_id: str) -> Identity:
    return Identity(subject=customer_id, role=Role.CUSTOMER, customer_id=customer_id)


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


@dataclass
class Tickets:
    service: ServiceProcess
    database: Database
    broker: Broker

    async def open(self, http: httpx.AsyncClient, customer_id: str, **fields: Any) -> dict[str, Any]:
        body = {"customer_id": customer_id, "kind": "complaint", "channel": "phone", "subject": "Parcel late",
                "category": "delivery", **fields}
        response = await http.post("/v1/tickets", json=body, headers=key())
        assert response.status_code == 201, response.text
        return response.json()

    async def move(self, http: httpx.AsyncClient, ticket_id: str, status: str, **extra: Any) -> httpx.Response:
        return await http.post(f"/v1/tickets/{ticket_id}/transitions", json={"status": status, **extra})

    async def setup_queue(self, group_id: str, skills: list[str], strategy: str, agents: list[str]) -> None:
        async with self.service.client(SUPERVISOR) as http:
            answer = await http.put(f"/v1/ticketing/groups/{group_id}", json={
                "group_id": group_id, "name": group_id, "skills": skills, "strategy": strategy})
            assert answer.status_code == 200, answer.text
            for agent in agents:
                answer = await http.put(f"/v1/ticketing/agents/{agent}", json={"name": agent, "groups": [group_id]})
                assert answer.status_code == 200, answer.text

    async def set_policy(self, **changes: Any) -> None:
        async with self.service.client(SUPERVISOR) as http:
            config = (await http.get("/v1/ticketing/policy")).json()["config"]
            config.update(changes)
            answer = await http.put("/v1/ticketing/policy", json={"config": config})
            assert answer.status_code == 200, answer.text

    async def scan(self, as_of: datetime, service: ServiceProcess | None = None) -> int:
        async with (service or self.service).client(SUPERVISOR) as http:
            answer = await http.post("/v1/ticketing/sla-scan", params={"as_of": as_of.isoformat()})
        assert answer.status_code == 200, answer.text
        return answer.json()["events"]

    async def applied(self, count: int) -> None:
        async def done() -> bool:
            return (await self.service.metric("crm_events_applied_total")
                    + await self.service.metric("crm_events_duplicate_total")) >= count
        await wait_until(done, what=f"{count} events applied")


@pytest.fixture
def tickets(broker, make_database, start_service) -> Tickets:
    database = make_database("tickets")
    return Tickets(start_service("tickets", database), database, broker)


def churn_changed(customer_id: str, new: str, at: datetime, old: str | None = "medium",
                  event_id: str | None = None) -> CloudEvent:
    event = CloudEvent.new(type="crm.churn.risk.changed", source="crm/churn", subject=customer_id,
                           data={"customer_id": customer_id, "old_level": old, "new_level": new, "score": 0.83,
                                 "reasons": [{"factor": "no order in 120 days", "contribution": 0.41}],
                                 "model_version": "m-1", "scored_at": at.isoformat()})
    return event.model_copy(update={"id": event_id}) if event_id else event


def tier_changed(customer_id: str, tier: str, at: datetime) -> CloudEvent:
    return CloudEvent.new(type="crm.loyalty.tier.changed", source="crm/loyalty", subject=customer_id,
                          data={"customer_id": customer_id, "old_tier": "regular", "new_tier": tier,
                                "changed_at": at.isoformat()})
