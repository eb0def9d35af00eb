"""Which events of an HTTP batch are accepted, and why the others are not. No I/O.

What the gateway decides for every event, whatever the body says:

- **who may send it**: a customer only interactions about themselves; a service caller only the
  event families its scopes name (:data:`EVENT_SCOPES`), so a storefront tracker key cannot fake
  paid orders or rewrite a customer's contact data and consents; any other role interactions only;
- **its source**: set from the caller's identity (:func:`source_for`), never taken from the body.
  Consumers de-duplicate on (source, type, id), so a caller can only ever collide with its own
  earlier events, never suppress another producer's;
- **its size**: the Kafka record it becomes must fit the broker's limit, or the outbox relay
  could never publish it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import (
    TOPIC_CUSTOMERS,
    TOPIC_FULFILMENT,
    TOPIC_INTERACTIONS,
    TOPIC_ORDERS,
    InvalidEvent,
    topic_for,
    validate_incoming,
)
from crm_shared.events.envelope import CloudEvent, to_kafka

from crm_gateway.domain import api_keys

# What a customer's own device may report: what they did, about themselves. Orders and
# registrations come from the shop's back end, never from a browser.
CUSTOMER_EVENT_TYPES = frozenset({"commerce.interaction.recorded"})
# Staff record what they did with a customer (a call, a chat); orders and contact data are the
# shop systems' to send.
STAFF_EVENT_TYPES = frozenset({"commerce.interaction.recorded"})

# The scope a service caller needs per topic (each topic is one family of event types).
EVENT_SCOPES: dict[str, str] = {
    TOPIC_INTERACTIONS: "interactions:write",  # trackers: page views, searches, clicks
    TOPIC_ORDERS: "orders:write",              # the order system: placed, paid, refunded …
    TOPIC_CUSTOMERS: "customers:write",        # the account system: registrations, contact data, consents
    TOPIC_FULFILMENT: "loyalty:fulfil",        # fulfilment systems: where a redeemed reward is
}

# Every source the gateway assigns starts with this; publishers on Kafka must not use it.
SOURCE_PREFIX = "/crm/gateway/"
_SOURCE_MAX = 500  # CloudEvent.source's bound

# Interaction attributes are free-form; bounded so that one event cannot carry a document.
ATTRIBUTES_MAX_BYTES = 32_768
ATTRIBUTES_MAX_DEPTH = 8


@dataclass(frozen=True)
class Rejection:
    index: int
    id: str | None
    reason: str


class EventTooLarge(ValueError):
    """An otherwise valid event whose Kafka record would exceed the broker's limit."""

    def __init__(self, index: int, size: int, limit: int) -> None:
        super().__init__(f"event {index} becomes a {size}-byte Kafka record; the limit is {limit} bytes")
        self.index, self.size, self.limit = index, size, limit


def source_for(identity: Identity) -> str:
    """The CloudEvents source of what this caller sends: one namespace per caller.

    API keys are named by their client, so a rotated key (same client) keeps the source and a
    resend through the new key is still recognised as a duplicate.
    """
    if identity.role is Role.CUSTOMER:
        kind, name = "customers", identity.customer_id or identity.subject
    elif identity.subject.startswith(api_keys.SUBJECT_PREFIX) and identity.client:
        kind, name = "api-clients", identity.client
    else:
        kind, name = str(identity.role), identity.subject
    source = f"{SOURCE_PREFIX}{kind}/{quote(name, safe='')}"
    if len(source) > _SOURCE_MAX:  # a CloudEvent's source is bounded; a digest stays one per caller
        source = f"{SOURCE_PREFIX}{kind}/sha256:{hashlib.sha256(name.encode()).hexdigest()}"
    return source


def may_send_events(identity: Identity) -> bool:
    """Whether the caller may send any event at all (a service caller needs an event scope)."""
    return identity.role is not Role.SERVICE or bool(identity.scopes & set(EVENT_SCOPES.values()))


def record_size(event: CloudEvent) -> int:
    """Bytes of key, value and headers of the Kafka record the outbox will publish."""
    key, value, headers = to_kafka(event)
    return len(key) + len(value) + sum(len(k) + len(v) for k, v in headers)


def screen_batch(batch: list[Any], identity: Identity, *,
                 max_record_bytes: int) -> tuple[list[CloudEvent], list[Rejection]]:
    """Split a batch into events to publish and rejections with their reasons.

    Raises :class:`EventTooLarge` when a valid event would not fit in a Kafka record: the caller
    refuses the whole batch, so that nothing of it is stored.
    """
    accepted: list[CloudEvent] = []
    rejected: list[Rejection] = []
    seen: set[tuple[str, str]] = set()
    source = source_for(identity)
    for index, raw in enumerate(batch):
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        event_id = raw_id if isinstance(raw_id, str) else None
        try:
            event, data = validate_incoming(raw)
            _check_sender(event, data, identity)
            if event.type == "commerce.interaction.recorded":
                _check_attributes(data.attributes)
            event = event.model_copy(update={"source": source})
            if (event.type, event.id) in seen:
                raise InvalidEvent("the same event (type and id) appears earlier in this batch")
            try:
                size = record_size(event)
            except orjson.JSONEncodeError:  # nested deeper than JSON serialisers go
                raise InvalidEvent("the event's data is nested too deeply") from None
            if size > max_record_bytes:
                raise EventTooLarge(index, size, max_record_bytes)
            seen.add((event.type, event.id))
            accepted.append(event)
        except InvalidEvent as exc:
            rejected.append(Rejection(index, event_id, str(exc)))
    return accepted, rejected


def _check_sender(event: CloudEvent, data: Any, identity: Identity) -> None:
    if identity.role is Role.CUSTOMER:
        if event.type not in CUSTOMER_EVENT_TYPES:
            raise InvalidEvent(f"a customer may not send {event.type!r} events")
        if getattr(data, "customer_id", None) != identity.customer_id:
            raise InvalidEvent("a customer may only send events about themselves")
    elif identity.role is Role.SERVICE:
        scope = EVENT_SCOPES[topic_for(event.type)]
        if scope not in identity.scopes:
            raise InvalidEvent(f"sending {event.type!r} events needs the {scope!r} scope")
    elif event.type not in STAFF_EVENT_TYPES:  # fail closed for any role the route may admit later
        raise InvalidEvent(f"the {identity.role} role may not send {event.type!r} events")


def _check_attributes(attributes: dict[str, Any]) -> None:
    # Depth first: the serialiser itself gives up past a few hundred levels.
    if _depth(attributes) > ATTRIBUTES_MAX_DEPTH:
        raise InvalidEvent(f"data.attributes: nested deeper than {ATTRIBUTES_MAX_DEPTH} levels")
    if len(orjson.dumps(attributes)) > ATTRIBUTES_MAX_BYTES:
        raise InvalidEvent(f"data.attributes: larger than {ATTRIBUTES_MAX_BYTES} bytes as JSON")


def _depth(value: Any) -> int:
    """Levels of objects and arrays (a flat object is 1), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if deepest > ATTRIBUTES_MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest
