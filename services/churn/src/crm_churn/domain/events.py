"""The integration events the churn service emits (crm.churn.*)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_shared.events.envelope import CloudEvent
from crm_shared.tracing import child_traceparent

SOURCE = "crm/churn"


def risk_changed(customer_id: str, old_level: str | None, new_level: str, score: float,
                 reasons: list[dict[str, Any]], model_version: str, at: datetime,
                 traceparent: str | None = None) -> CloudEvent:
    """``crm.churn.risk.changed``: the level moved (or was set for the first time), with the reasons
    (factor, contribution in log-odds, and a line an agent can read). Loyalty turns it into a win-back
    offer and tickets into a call-back task."""
    return CloudEvent.new(
        type="crm.churn.risk.changed", source=SOURCE, subject=customer_id,
        traceparent=child_traceparent(traceparent),
        data={"customer_id": customer_id, "old_level": old_level, "new_level": new_level,
              "score": round(score, 6), "reasons": reasons, "model_version": model_version,
              "scored_at": at.isoformat()})
