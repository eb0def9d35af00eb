"""The gateway's commands: events received over HTTP, call-centre interactions, API keys.

Each takes a unit of work and plain values, returns plain values or raises a
``crm_shared.errors`` error (problem+json is made of it in one place), and never commits: the
route that opened the unit of work does. The rules themselves (who may send what, an event's
source and size, the interaction's bounds, the key format) are pure, in ``domain/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_shared.auth import Identity
from crm_shared.errors import DomainError, NotFoundError, NotPermitted, RuleViolation
from crm_shared.events.envelope import CloudEvent
from crm_shared.uow import UnitOfWork

from crm_gateway.domain import api_keys
from crm_gateway.domain.ingest import EVENT_SCOPES, EventTooLarge, Rejection, may_send_events, screen_batch
from crm_gateway.domain.interactions import interaction_event
from crm_gateway.domain.routes import SCOPES
from crm_gateway.repository import GatewayRepository

Uow = UnitOfWork[GatewayRepository]
INVALID = {"code": "invalid-request", "title": "Invalid request"}


class ContentTooLarge(DomainError):
    """More than the gateway takes in one request (413)."""

    status = 413
    default_title = "Content Too Large"
    default_code = "content-too-large"


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    accepted: list[str]  # ids of the events queued, in batch order
    rejected: list[Rejection]


def require_event_sender(identity: Identity) -> None:
    """A service caller needs one of the event scopes to send anything at all."""
    if not may_send_events(identity):
        raise NotPermitted(f"this client holds none of the event scopes {sorted(EVENT_SCOPES.values())}")


async def accept_event_batch(uow: Uow, identity: Identity, batch: Any, *, batch_max: int,
                             max_record_bytes: int) -> BatchOutcome:
    """Queue the valid events of a parsed batch (one event object or a list of them) in the
    outbox; the others come back with their reasons. An event whose Kafka record would be too
    large refuses the whole batch, and nothing of it is queued."""
    require_event_sender(identity)
    if isinstance(batch, dict):
        batch = [batch]  # one structured-mode event (application/cloudevents+json)
    if not isinstance(batch, list) or not batch:
        raise RuleViolation("send a JSON array of CloudEvents", **INVALID)
    if len(batch) > batch_max:
        raise ContentTooLarge(f"a batch holds at most {batch_max} events; split it")
    try:
        accepted, rejected = screen_batch(batch, identity, max_record_bytes=max_record_bytes)
    except EventTooLarge as exc:
        raise ContentTooLarge(f"{exc}; nothing of this batch was stored", code="event-too-large",
                              index=exc.index, limit=exc.limit) from None
    if accepted:
        await uow.publish(accepted)
    return BatchOutcome([e.id for e in accepted], rejected)


async def record_interaction(uow: Uow, *, customer_id: str, identity: Identity, idempotency_key: str, kind: str,
                             occurred_at: datetime, channel: str | None, direction: str, duration_s: int | None,
                             ticket_id: str | None, now: datetime, traceparent: str | None) -> CloudEvent:
    """Queue a call or chat an agent had with the customer as its ``commerce.interaction.recorded``
    event (the same event for the same agent and key)."""
    try:
        event = interaction_event(customer_id=customer_id, identity=identity, idempotency_key=idempotency_key,
                                  kind=kind, occurred_at=occurred_at, channel=channel, direction=direction,
                                  duration_s=duration_s, ticket_id=ticket_id, now=now, traceparent=traceparent)
    except ValueError as exc:  # InteractionRefused, or data the event catalogue refuses
        raise RuleViolation(str(exc), **INVALID) from None
    await uow.publish([event])
    return event


async def list_api_keys(uow: Uow) -> list[dict[str, Any]]:
    return await uow.repo.list_api_keys()


async def create_api_key(uow: Uow, *, client: str, scopes: list[str], created_by: str,
                         now: datetime) -> dict[str, Any]:
    """Issue a key limited to known scopes; the answer holds the key, which is stored only hashed."""
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise RuleViolation(f"unknown scopes {unknown}; known: {sorted(SCOPES)}", **INVALID)
    new = api_keys.generate()
    row = {"key_id": new.key_id, "client": client, "secret_hash": new.secret_hash,
           "scopes": sorted(set(scopes)), "created_by": created_by, "created_at": now}
    await uow.repo.add_api_key(row)
    return {"key": new.key, **{k: v for k, v in row.items() if k != "secret_hash"}}


async def revoke_api_key(uow: Uow, key_id: str, *, by: str, now: datetime) -> None:
    """Revoke a key; revoking one already revoked changes nothing, an unknown one is not found."""
    if not await uow.repo.revoke_api_key(key_id, by=by, at=now) and not await uow.repo.api_key_exists(key_id):
        raise NotFoundError.of("API key", key_id)
