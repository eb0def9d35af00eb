"""Which events of an HTTP batch are accepted, and why the others are not. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import InvalidEvent, validate_incoming
from crm_shared.events.envelope import CloudEvent

# What a customer's own device may report: what they did, about themselves. Orders and
# registrations come from the shop's back end, never from a browser.
CUSTOMER_EVENT_TYPES = frozenset({"commerce.interaction.recorded"})


@dataclass(frozen=True)
class Rejection:
    index: int
    id: str | None
    reason: str


def screen_batch(batch: list[Any], identity: Identity) -> tuple[list[CloudEvent], list[Rejection]]:
    """Split a batch into events to publish and rejections with their reasons."""
    accepted: list[CloudEvent] = []
    rejected: list[Rejection] = []
    seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(batch):
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        event_id = raw_id if isinstance(raw_id, str) else None
        try:
            event, data = validate_incoming(raw)
            if identity.role is Role.CUSTOMER:
                if event.type not in CUSTOMER_EVENT_TYPES:
                    raise InvalidEvent(f"a customer may not send {event.type!r} events")
                if getattr(data, "customer_id", None) != identity.customer_id:
                    raise InvalidEvent("a customer may only send events about themselves")
            if (event.source, event.id) in seen:
                raise InvalidEvent("the same event (source and id) appears earlier in this batch")
            seen.add((event.source, event.id))
            accepted.append(event)
        except InvalidEvent as exc:
            rejected.append(Rejection(index, event_id, str(exc)))
    return accepted, rejected
