"""The integration event the profile emits when a customer's archive changes."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from crm_shared.events.envelope import CloudEvent
from crm_shared.tracing import child_traceparent

SOURCE = "crm/profile"
CUSTOMER_UPDATED = "crm.profile.customer.updated"
CUSTOMER_ERASED = "crm.profile.customer.erased"


def format_amount(amount: Decimal) -> str:
    """Money as a decimal string with at least two places (``"120.50"``), never a float."""
    cents = amount.quantize(Decimal("0.01"))
    return format(cents if cents == amount else amount.normalize(), "f")


def customer_updated(*, customer_id: str, changed: list[str], order_count: int,
                     total_spent: dict[str, Decimal], first_order_at: datetime | None,
                     last_order_at: datetime | None, cause_traceparent: str | None) -> CloudEvent:
    return CloudEvent.new(
        type=CUSTOMER_UPDATED, source=SOURCE, subject=customer_id,
        traceparent=child_traceparent(cause_traceparent),
        data={
            "customer_id": customer_id,
            "changed": changed,
            "order_count": order_count,
            "total_spent": {cur: format_amount(amount) for cur, amount in sorted(total_spent.items())},
            "first_order_at": first_order_at.isoformat() if first_order_at else None,
            "last_order_at": last_order_at.isoformat() if last_order_at else None,
        },
    )


def customer_erased(*, customer_id: str, erased_at: datetime, traceparent: str | None,
                    merged_customer_ids: list[str] = ()) -> CloudEvent:
    """Keyed by the survivor, like the merges of the duplicates it names, so consumers apply those first."""
    return CloudEvent.new(type=CUSTOMER_ERASED, source=SOURCE, subject=customer_id,
                          traceparent=child_traceparent(traceparent),
                          data={"customer_id": customer_id, "erased_at": erased_at.isoformat(),
                                "merged_customer_ids": list(merged_customer_ids)})

CUSTOMER_MERGED = "crm.profile.customer.merged"


def customer_merged(*, customer_id: str, merged_customer_id: str, merged_at: datetime,
                    traceparent: str | None) -> CloudEvent:
    return CloudEvent.new(type=CUSTOMER_MERGED, source=SOURCE, subject=customer_id,
                          traceparent=child_traceparent(traceparent),
                          data={"customer_id": customer_id, "merged_customer_id": merged_customer_id,
                                "merged_at": merged_at.isoformat()})


BIRTHDAY_CHANGED = "crm.profile.customer.birthday_changed"


def birthday_changed(*, customer_id: str, birthday: date, changed_at: datetime,
                     traceparent: str | None) -> CloudEvent:
    """An agent's birthday correction, for the loyalty service's birthday job: the month and day
    only, so the year (and nothing else personal) never goes on the bus."""
    return CloudEvent.new(type=BIRTHDAY_CHANGED, source=SOURCE, subject=customer_id,
                          traceparent=child_traceparent(traceparent),
                          data={"customer_id": customer_id, "month": birthday.month, "day": birthday.day,
                                "changed_at": changed_at.isoformat()})
CUSTOMER_UNMERGED = "crm.profile.customer.unmerged"


def customer_unmerged(*, customer_id: str, unmerged_customer_id: str, unmerged_at: datetime,
                      traceparent: str | None) -> CloudEvent:
    return CloudEvent.new(type=CUSTOMER_UNMERGED, source=SOURCE, subject=customer_id,
                          traceparent=child_traceparent(traceparent),
                          data={"customer_id": customer_id, "unmerged_customer_id": unmerged_customer_id,
                                "unmerged_at": unmerged_at.isoformat()})


SEGMENT_ENTERED = "crm.profile.segment.entered"
SEGMENT_EXITED = "crm.profile.segment.exited"


def segment_changed(*, customer_id: str, segment_id: str, entered: bool, at: datetime) -> CloudEvent:
    """A customer entered or left a segment (``rfm:<name>`` for RFM segments, else a custom one)."""
    return CloudEvent.new(type=SEGMENT_ENTERED if entered else SEGMENT_EXITED, source=SOURCE, subject=customer_id,
                          data={"customer_id": customer_id, "segment_id": segment_id, "at": at.isoformat()})


CONSENT_CHANGED = "crm.profile.consent.changed"


def consent_changed(*, customer_id: str, channel: str, granted: bool, reason: str, changed_at: datetime,
                    traceparent: str | None) -> CloudEvent:
    """One channel's marketing consent changed (``reason``: registration, update, agent, unsubscribe,
    erasure), for the campaigns service's copy of the consents. The channel and the flag only."""
    return CloudEvent.new(type=CONSENT_CHANGED, source=SOURCE, subject=customer_id,
                          traceparent=child_traceparent(traceparent),
                          data={"customer_id": customer_id, "channel": channel, "granted": granted,
                                "source": reason, "changed_at": changed_at.isoformat()})
