"""The events the campaigns service emits: types, source, and their data (ids only, no PII)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_shared.events.envelope import CloudEvent

SOURCE = "crm/campaigns"
MESSAGE_STATUS = "crm.campaigns.message.status_changed"
UNSUBSCRIBED = "crm.campaigns.unsubscribed"
NOTIFICATION = "crm.notification.requested"


def message_status(message_id: str, campaign_id: str, customer_id: str, channel: str, status: str,
                   at: datetime) -> CloudEvent:
    # A message skipped at send time (no consent, no address, erased) is "suppressed" on the bus.
    status = "suppressed" if status == "skipped" else status
    return CloudEvent.new(type=MESSAGE_STATUS, source=SOURCE, subject=customer_id, time=at, data={
        "message_id": message_id, "campaign_id": campaign_id, "customer_id": customer_id, "channel": channel,
        "status": status, "at": at.isoformat()})


def unsubscribed(customer_id: str, channel: str, campaign_id: str, message_id: str, at: datetime) -> CloudEvent:
    return CloudEvent.new(type=UNSUBSCRIBED, source=SOURCE, subject=customer_id, time=at, data={
        "customer_id": customer_id, "channel": channel, "campaign_id": campaign_id, "message_id": message_id,
        "at": at.isoformat()})


def notification(customer_id: str, params: dict[str, Any], at: datetime) -> CloudEvent:
    """For shops that deliver themselves: the message's ids and variables, never a name or a code."""
    return CloudEvent.new(type=NOTIFICATION, source=SOURCE, subject=customer_id, time=at, data={
        "customer_id": customer_id, "kind": "campaign_message", "params": params, "requested_at": at.isoformat()})
