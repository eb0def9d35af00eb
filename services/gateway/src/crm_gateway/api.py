"""HTTP routes served by the gateway itself (thin). Proxied routes live in the route table;
who may call what is decided there, before a request reaches these functions."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from crm_shared.auth import ALL_ROLES, CurrentIdentity, Forbidden
from crm_shared.bus.outbox import add_to_outbox
from crm_shared.db import DbConnection
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import PROBLEM_BASE, PROBLEM_JSON, NotFound, Problem
from crm_shared.tracing import child_traceparent, current_traceparent
from fastapi import APIRouter, Path, Request, Response
from sqlalchemy import insert, select

from crm_gateway import customer360
from crm_gateway.domain import api_keys
from crm_gateway.domain.ingest import EVENT_SCOPES, EventTooLarge, may_send_events, screen_batch
from crm_gateway.domain.interactions import interaction_event
from crm_gateway.domain.routes import SCOPES, STAFF, SUPERVISOR
from crm_gateway.models import api_keys as api_keys_table
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
    """The customer 360: profile, loyalty account, open tickets and churn risk in one document.

    The four services are asked at once. A part whose service is down or slow is marked
    ``unavailable`` and the document still comes back within the gateway's budget
    (``CUSTOMER360_BUDGET_S``, 0.8 s by default), with ``complete: false``.
    """
    identity.authorize(ALL_ROLES, scope="customers:read", customer_id=customer_id)
    return await customer360.assemble(customer_id, identity, request.app.state.resources)


@router.post("/v1/events", status_code=202, response_model=EventsAccepted, tags=["events"],
             openapi_extra={"requestBody": _EVENT_BATCH_BODY},
             responses={**_PROBLEMS, 413: {"content": {PROBLEM_JSON: {}}, "description":
                                           "Too many events, or an event larger than the broker accepts"}})
async def ingest_events(request: Request, identity: CurrentIdentity) -> EventsAccepted:
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
    if not may_send_events(identity):
        raise Forbidden(f"this client holds none of the event scopes {sorted(EVENT_SCOPES.values())}")
    try:
        batch = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise Problem(400, "Bad Request", "the body is not valid JSON") from None
    if isinstance(batch, dict):
        batch = [batch]  # one structured-mode event (application/cloudevents+json)
    if not isinstance(batch, list) or not batch:
        raise Problem(422, "Invalid request", "send a JSON array of CloudEvents")
    if len(batch) > resources.settings.events_batch_max:
        raise Problem(413, "Content Too Large",
                      f"a batch holds at most {resources.settings.events_batch_max} events; split it")
    try:
        accepted, rejected = screen_batch(batch, identity, max_record_bytes=resources.settings.event_max_bytes)
    except EventTooLarge as exc:
        raise Problem(413, "Content Too Large", f"{exc}; nothing of this batch was stored",
                      type_=PROBLEM_BASE + "event-too-large", index=exc.index, limit=exc.limit) from None
    if accepted:
        async with request.app.state.runtime.engine.begin() as tx:
            await add_to_outbox(tx, accepted)
    resources.metrics.events_ingested.labels("accepted").inc(len(accepted))
    resources.metrics.events_ingested.labels("rejected").inc(len(rejected))
    return EventsAccepted(accepted=[e.id for e in accepted],
                          rejected=[RejectedEvent(index=r.index, id=r.id, reason=r.reason) for r in rejected])


@router.post("/v1/customers/{customer_id}/interactions", status_code=202, response_model=InteractionRecorded,
             tags=["customers"],
             responses={**_PROBLEMS, 422: {"content": {PROBLEM_JSON: {}}, "description": "Invalid interaction"}})
async def record_interaction(body: InteractionCreate, request: Request, identity: CurrentIdentity,
                             key: IdempotencyKey,
                             customer_id: str = Path(min_length=1, max_length=100)) -> InteractionRecorded:
    """Record a phone call or chat with the customer (agents and supervisors), as the
    ``commerce.interaction.recorded`` event a tracker would send: it reaches the profile timeline
    (``interaction.call`` / ``interaction.chat``) and the churn model's activity.

    The agent is the caller (``recorded_by``, from the token). Requires ``Idempotency-Key``: a
    retry with the same key is the same event, applied once. Free text is not accepted; a note
    (``POST /v1/profiles/{id}/notes``) keeps what was said.
    """
    identity.authorize(STAFF, customer_id=customer_id)
    try:
        event = interaction_event(customer_id=customer_id, identity=identity, idempotency_key=key, kind=body.kind,
                                  occurred_at=body.occurred_at, channel=body.channel, direction=body.direction,
                                  duration_s=body.duration_s, ticket_id=body.ticket_id, now=datetime.now(UTC),
                                  traceparent=child_traceparent(current_traceparent.get()))
    except ValueError as exc:  # InteractionRefused, or data the event catalogue refuses
        raise Problem(422, "Invalid request", str(exc)) from None
    async with request.app.state.runtime.engine.begin() as tx:
        await add_to_outbox(tx, [event])
    return InteractionRecorded(event_id=event.id, customer_id=event.data["customer_id"], kind=event.data["kind"],
                               channel=event.data["channel"], occurred_at=body.occurred_at,
                               recorded_by=identity.subject)


@router.get("/v1/api-keys", response_model=list[ApiKeyRead], tags=["api keys"], responses=_PROBLEMS)
async def list_api_keys(db: DbConnection, identity: CurrentIdentity) -> list[ApiKeyRead]:
    """Every API key ever issued (revoked ones too), newest first. Secrets are never shown."""
    identity.authorize(SUPERVISOR)
    t = api_keys_table.c
    rows = await db.execute(select(t.key_id, t.client, t.scopes, t.created_by, t.created_at, t.revoked_at,
                                   t.revoked_by).order_by(t.created_at.desc()))
    return [ApiKeyRead(**row._mapping) for row in rows]


@router.post("/v1/api-keys", status_code=201, response_model=ApiKeyCreated, tags=["api keys"],
             responses={**_PROBLEMS, 422: {"content": {PROBLEM_JSON: {}}, "description": "Unknown scope"}})
async def create_api_key(body: ApiKeyCreate, db: DbConnection, identity: CurrentIdentity) -> ApiKeyCreated:
    """Issue an API key for a server-side integration (role ``service``, limited to its scopes).

    The key is in this answer only; store it in the client's secret store. Send it as
    ``X-API-Key``.
    """
    identity.authorize(SUPERVISOR)
    unknown = sorted(set(body.scopes) - SCOPES)
    if unknown:
        raise Problem(422, "Invalid request", f"unknown scopes {unknown}; known: {sorted(SCOPES)}")
    new = api_keys.generate()
    row = {"key_id": new.key_id, "client": body.client, "secret_hash": new.secret_hash,
           "scopes": sorted(set(body.scopes)), "created_by": identity.subject, "created_at": datetime.now(UTC)}
    await db.execute(insert(api_keys_table).values(**row))
    await db.commit()
    return ApiKeyCreated(key=new.key, **{k: v for k, v in row.items() if k != "secret_hash"})


@router.delete("/v1/api-keys/{key_id}", status_code=204, tags=["api keys"],
               responses={**_PROBLEMS, 404: {"content": {PROBLEM_JSON: {}}, "description": "Unknown key"}})
async def revoke_api_key(request: Request, identity: CurrentIdentity,
                         key_id: str = Path(pattern=r"^[0-9a-f]{16}$")) -> Response:
    """Revoke a key: refused at once by this gateway, within ``API_KEY_CACHE_S`` by the others."""
    identity.authorize(SUPERVISOR)
    store = request.app.state.resources.authenticator.keys
    if not await store.revoke(key_id, by=identity.subject) and not await store.exists(key_id):
        raise NotFound("API key", key_id)
    return Response(status_code=204)



