"""HTTP routes served by the gateway itself (thin). Proxied routes live in the route table;
who may call what is decided there, before a request reaches these functions."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from crm_shared.auth import ALL_ROLES, CurrentIdentity
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import PROBLEM_JSON, Problem
from crm_shared.tracing import child_traceparent, current_traceparent
from crm_shared.uow import uow_dependency
from fastapi import APIRouter, Path, Request, Response

from crm_gateway import customer360, usecases
from crm_gateway.domain.routes import STAFF, SUPERVISOR
from crm_gateway.repository import GatewayRepository
from crm_gateway.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    Customer360Read,
    EventsAccepted,
    InteractionCreate,
    InteractionRecorded,
    RejectedEvent,
)

router = APIRouter()
Uow = uow_dependency(GatewayRepository)
ReadUow = uow_dependency(GatewayRepository, read_only=True)

_PROBLEMS = {code: {"content": {PROBLEM_JSON: {}}, "description": text} for code, text in {
    401: "No valid token or API key", 403: "Not allowed for this caller", 429: "Rate limit used up"}.items()}

_EVENT_BATCH_BODY = {
    "required": True,
    "content": {media: {"schema": {"type": "array", "items": {
        "type": "object", "required": ["id", "source", "type", "specversion", "data"],
        "properties": {"id": {"type": "string"}, "source": {"type": "string"}, "type": {"type": "string"},
                       "specversion": {"type": "string", "enum": ["1.0"]}, "time": {"type": "string"},
                       "subject": {"type": "string"}, "data": {"type": "object"}}}}}
                for media in ("application/cloudevents-batch+json", "application/json")},
}


@router.get("/v1/customers/{customer_id}", response_model=Customer360Read, tags=["customers"],
            responses={**_PROBLEMS,
                       404: {"content": {PROBLEM_JSON: {}}, "description": "No service knows the customer"}})
async def get_customer_360(request: Request, identity: CurrentIdentity,
                           customer_id: str = Path(min_length=1, max_length=100)) -> Customer360Read:
    """The customer 360: profile, loyalty account, open tickets, churn risk and recent campaign
    contacts in one document.

    The services are asked at once. A part whose service is down, slow or not deployed is marked
    ``unavailable`` and the document still comes back within the gateway's budget
    (``CUSTOMER360_BUDGET_S``, 0.8 s by default), with ``complete: false``. A part this caller may
    not call the route of (a customer's churn risk or campaign contacts) is ``forbidden``.
    """
    identity.authorize(ALL_ROLES, scope="customers:read", customer_id=customer_id)
    return await customer360.assemble(customer_id, identity, request.app.state.resources)


@router.post("/v1/events", status_code=202, response_model=EventsAccepted, tags=["events"],
             openapi_extra={"requestBody": _EVENT_BATCH_BODY},
             responses={**_PROBLEMS, 413: {"content": {PROBLEM_JSON: {}}, "description":
                                           "Too many events, or an event larger than the broker accepts"}})
async def ingest_events(request: Request, identity: CurrentIdentity, uow: Uow) -> EventsAccepted:
    """Publish a batch of CloudEvents (structured JSON) for systems that cannot speak Kafka.

    Each event is checked against the event catalogue on its own; valid ones are queued for
    Kafka in one transaction (keyed by customer id) before the 202 is sent, so an accepted event
    is never lost. Sending a batch again is safe: consumers apply an event once.

    The gateway sets each event's ``source`` from the caller (``/crm/gateway/…``), whatever the
    body says. A customer token may send only ``commerce.interaction.recorded`` events about
    itself; a service caller needs ``interactions:write``, ``orders:write`` or
    ``customers:write`` for the events of that family. An event whose Kafka record would exceed
    ``EVENT_MAX_BYTES`` makes the whole batch a 413, and nothing of it is stored.
    """
    resources = request.app.state.resources
    try:
        batch = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        usecases.require_event_sender(identity)  # a caller who may send no event hears 403 first
        raise Problem(400, "Bad Request", "the body is not valid JSON") from None
    outcome = await usecases.accept_event_batch(uow, identity, batch, batch_max=resources.settings.events_batch_max,
                                                max_record_bytes=resources.settings.event_max_bytes)
    await uow.commit()
    resources.metrics.events_ingested.labels("accepted").inc(len(outcome.accepted))
    resources.metrics.events_ingested.labels("rejected").inc(len(outcome.rejected))
    return EventsAccepted(accepted=outcome.accepted,
                          rejected=[RejectedEvent(index=r.index, id=r.id, reason=r.reason) for r in outcome.rejected])


@router.post("/v1/customers/{customer_id}/interactions", status_code=202, response_model=InteractionRecorded,
             tags=["customers"],
             responses={**_PROBLEMS, 422: {"content": {PROBLEM_JSON: {}}, "description": "Invalid interaction"}})
async def record_interaction(body: InteractionCreate, identity: CurrentIdentity, key: IdempotencyKey, uow: Uow,
                             customer_id: str = Path(min_length=1, max_length=100)) -> InteractionRecorded:
    """Record a phone call or chat with the customer (agents and supervisors), as the
    ``commerce.interaction.recorded`` event a tracker would send: it reaches the profile timeline
    (``interaction.call`` / ``interaction.chat``) and the churn model's activity.

    The agent is the caller (``recorded_by``, from the token). Requires ``Idempotency-Key``: a
    retry with the same key is the same event, applied once. Free text is not accepted; a note
    (``POST /v1/profiles/{id}/notes``) keeps what was said.
    """
    identity.authorize(STAFF, customer_id=customer_id)
    event = await usecases.record_interaction(
        uow, customer_id=customer_id, identity=identity, idempotency_key=key, kind=body.kind,
        occurred_at=body.occurred_at, channel=body.channel, direction=body.direction, duration_s=body.duration_s,
        ticket_id=body.ticket_id, now=datetime.now(UTC), traceparent=child_traceparent(current_traceparent.get()))
    await uow.commit()
    return InteractionRecorded(event_id=event.id, customer_id=event.data["customer_id"], kind=event.data["kind"],
                               channel=event.data["channel"], occurred_at=body.occurred_at,
                               recorded_by=identity.subject)


@router.get("/v1/api-keys", response_model=list[ApiKeyRead], tags=["api keys"], responses=_PROBLEMS)
async def list_api_keys(uow: ReadUow, identity: CurrentIdentity) -> list[ApiKeyRead]:
    """Every API key ever issued (revoked ones too), newest first. Secrets are never shown."""
    identity.authorize(SUPERVISOR)
    return [ApiKeyRead(**row) for row in await usecases.list_api_keys(uow)]


@router.post("/v1/api-keys", status_code=201, response_model=ApiKeyCreated, tags=["api keys"],
             responses={**_PROBLEMS, 422: {"content": {PROBLEM_JSON: {}}, "description": "Unknown scope"}})
async def create_api_key(body: ApiKeyCreate, uow: Uow, identity: CurrentIdentity) -> ApiKeyCreated:
    """Issue an API key for a server-side integration (role ``service``, limited to its scopes).

    The key is in this answer only; store it in the client's secret store. Send it as
    ``X-API-Key``.
    """
    identity.authorize(SUPERVISOR)
    created = await usecases.create_api_key(uow, client=body.client, scopes=body.scopes, created_by=identity.subject,
                                            now=datetime.now(UTC))
    await uow.commit()
    return ApiKeyCreated(**created)


@router.delete("/v1/api-keys/{key_id}", status_code=204, tags=["api keys"],
               responses={**_PROBLEMS, 404: {"content": {PROBLEM_JSON: {}}, "description": "Unknown key"}})
async def revoke_api_key(request: Request, identity: CurrentIdentity, uow: Uow,
                         key_id: str = Path(pattern=r"^[0-9a-f]{16}$")) -> Response:
    """Revoke a key: refused at once by this gateway, within ``API_KEY_CACHE_S`` by the others."""
    identity.authorize(SUPERVISOR)
    await usecases.revoke_api_key(uow, key_id, by=identity.subject, now=datetime.now(UTC))
    await uow.commit()
    request.app.state.resources.authenticator.keys.evict(key_id)
    return Response(status_code=204)
