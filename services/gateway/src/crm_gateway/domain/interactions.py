"""A call or chat the call centre had with a customer, as a ``commerce.interaction.recorded`` event.

The gateway builds the event itself: the agent comes from their token, the event's source is the
gateway's own, and its id is derived from the agent and their ``Idempotency-Key``, so a retried
request is the same event and every consumer applies it once. What the agent may state is a
closed list of fields (no free text: what was said belongs in the customer's notes, which stay in
the profile service and off the bus). No I/O.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from crm_shared.auth import Identity
from crm_shared.events.catalogue import InteractionData
from crm_shared.events.envelope import CloudEvent

SOURCE = "/crm/gateway/call-centre"  # under the prefix no caller can send as (ingest.source_for)
EVENT_TYPE = "commerce.interaction.recorded"
DEFAULT_CHANNEL = {"call": "phone", "chat": "chat"}
# The agent's clock and ours may differ a little; an interaction further ahead is a mistake, and
# one older than a year is an import, not a call-centre record.
MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(days=366)
# Event ids are names in this namespace: the same agent and key always give the same id.
_ID_NAMESPACE = uuid.UUID("6f1d2c8e-3b0a-4d52-9a57-1c5e0f6b7a41")


class InteractionRefused(ValueError):
    """The interaction cannot be recorded as stated; the route answers 422."""


def event_id_for(identity: Identity, idempotency_key: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{identity.subject}\x1f{idempotency_key}"))


def interaction_event(*, customer_id: str, identity: Identity, idempotency_key: str, kind: str,
                      occurred_at: datetime, channel: str | None, direction: str, duration_s: int | None,
                      ticket_id: str | None, now: datetime, traceparent: str | None = None) -> CloudEvent:
    if occurred_at > now + MAX_FUTURE:
        raise InteractionRefused("occurred_at is in the future")
    if occurred_at < now - MAX_AGE:
        raise InteractionRefused("occurred_at is more than a year ago")
    attributes: dict[str, Any] = {"recorded_by": identity.subject, "direction": direction}
    if duration_s is not None:
        attributes["duration_s"] = duration_s
    if ticket_id is not None:
        attributes["ticket_id"] = ticket_id
    data = InteractionData(customer_id=customer_id, kind=kind, channel=channel or DEFAULT_CHANNEL[kind],
                           occurred_at=occurred_at, attributes=attributes)
    event = CloudEvent.new(type=EVENT_TYPE, source=SOURCE, subject=data.customer_id,
                           data=data.model_dump(mode="json"), time=now, traceparent=traceparent)
    return event.model_copy(update={"id": event_id_for(identity, idempotency_key)})
