"""The integration events the loyalty service emits (crm.loyalty.*, crm.notification.requested)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_shared.events.envelope import CloudEvent
from crm_shared.tracing import child_traceparent

from crm_loyalty.domain.ledger import Book, Movement

SOURCE = "crm/loyalty"
TIER_CHANGED = "crm.loyalty.tier.changed"
NOTIFICATION_REQUESTED = "crm.notification.requested"

# Which event tells the world about a ledger movement. Releases (pending → available) are an
# internal book-keeping step: the points were announced when earned.
EVENT_OF_KIND = {
    "earn": "crm.loyalty.points.earned",
    "bonus": "crm.loyalty.points.earned",
    "redeem": "crm.loyalty.points.redeemed",
    "reverse": "crm.loyalty.points.reversed",
    "refund_of_spent": "crm.loyalty.points.reversed",
    "expire": "crm.loyalty.points.expired",
    "adjust": "crm.loyalty.points.adjusted",
}


def movement_events(book: Book, *, traceparent: str | None = None) -> list[CloudEvent]:
    """One event per announced movement, carrying the balances right after it."""
    events = []
    movements = book.movements
    if len(movements) == 1:  # the common case (one order for a member in a batch): no sums
        available, pending, debt = (book.available - movements[0].available, book.pending - movements[0].pending,
                                    book.debt - movements[0].debt)
    else:
        available, pending, debt = (book.available - sum(m.available for m in movements),
                                    book.pending - sum(m.pending for m in movements),
                                    book.debt - sum(m.debt for m in movements))
    for movement in movements:
        available += movement.available
        pending += movement.pending
        debt += movement.debt
        event_type = EVENT_OF_KIND.get(movement.kind)
        if event_type is None or movement.points == 0:
            continue
        events.append(_points_event(event_type, book.customer_id, movement, available, pending, debt, traceparent))
    return events


def _points_event(event_type: str, customer_id: str, movement: Movement, available: int, pending: int, debt: int,
                  traceparent: str | None) -> CloudEvent:
    data: dict[str, Any] = {"customer_id": customer_id, "kind": movement.kind, "points": movement.points,
                            "available": available, "pending": pending, "debt": debt,
                            "reason": movement.reason[:200], "occurred_at": movement.business_at.isoformat()}
    if movement.order_id:
        data["order_id"] = movement.order_id
    if movement.redemption_id:
        data["redemption_id"] = movement.redemption_id
    return CloudEvent.new(type=event_type, source=SOURCE, subject=customer_id, data=data,
                          traceparent=child_traceparent(traceparent))


def tier_changed(customer_id: str, old_tier: str | None, new_tier: str, at: datetime,
                 traceparent: str | None = None) -> CloudEvent:
    return CloudEvent.new(type=TIER_CHANGED, source=SOURCE, subject=customer_id,
                          traceparent=child_traceparent(traceparent),
                          data={"customer_id": customer_id, "old_tier": old_tier, "new_tier": new_tier,
                                "changed_at": at.isoformat()})


def notification(customer_id: str, kind: str, params: dict[str, Any], at: datetime,
                 traceparent: str | None = None) -> CloudEvent:
    return CloudEvent.new(type=NOTIFICATION_REQUESTED, source=SOURCE, subject=customer_id,
                          traceparent=child_traceparent(traceparent),
                          data={"customer_id": customer_id, "kind": kind, "params": params,
                                "requested_at": at.isoformat()})
