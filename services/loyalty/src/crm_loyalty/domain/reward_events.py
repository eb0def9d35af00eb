"""The integration events of the reward catalogue (``crm.loyalty.reward.*``). No personal data and
never a coupon code: ids, the reward's name, amounts and statuses."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from crm_shared.events.envelope import CloudEvent
from crm_shared.tracing import child_traceparent

from crm_loyalty.domain.events import SOURCE

REWARD_REDEEMED = "crm.loyalty.reward.redeemed"
FULFILMENT_CHANGED = "crm.loyalty.reward.fulfilment_changed"


def reward_redeemed(*, redemption_id: str, customer_id: str, reward_id: str, reward_name: str, kind: str,
                    quantity: int, points: int, cash_due: Decimal | None, cash_currency: str | None,
                    fulfilment_status: str, at: datetime, traceparent: str | None = None) -> CloudEvent:
    data: dict[str, Any] = {"redemption_id": redemption_id, "customer_id": customer_id, "reward_id": reward_id,
                            "reward_name": reward_name[:200], "kind": kind, "quantity": quantity, "points": points,
                            "fulfilment_status": fulfilment_status, "redeemed_at": at.isoformat()}
    if cash_due is not None:
        data["cash_due"], data["cash_currency"] = str(cash_due), cash_currency
    return CloudEvent.new(type=REWARD_REDEEMED, source=SOURCE, subject=customer_id, data=data,
                          traceparent=child_traceparent(traceparent))


def fulfilment_changed(*, redemption_id: str, customer_id: str, reward_id: str, status: str, at: datetime,
                       points_returned: int | None = None, traceparent: str | None = None) -> CloudEvent:
    data: dict[str, Any] = {"redemption_id": redemption_id, "customer_id": customer_id, "reward_id": reward_id,
                            "status": status, "at": at.isoformat()}
    if points_returned:
        data["points_returned"] = points_returned
    return CloudEvent.new(type=FULFILMENT_CHANGED, source=SOURCE, subject=customer_id, data=data,
                          traceparent=child_traceparent(traceparent))
