"""Triggered journeys: an event about a customer starts every active campaign listening for it.

Each event is one occurrence (``event:<event id>``), so a redelivered event starts nothing twice;
the contact is due after the campaign's wait, and its condition (the audience) is checked when it
is due, for the treatment and the control group alike, so the two stay comparable. Never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from crm_campaigns.domain.campaigns import TRIGGERS, trigger_matches
from crm_campaigns.domain.groups import assign_group

if TYPE_CHECKING:
    from crm_shared.uow import UnitOfWork

    from crm_campaigns.repository import CampaignsRepository

    Uow = UnitOfWork[CampaignsRepository]


@dataclass(frozen=True, slots=True)
class Hit:
    """One event that may start journeys: who, which event, when, and what the trigger filters on."""

    customer_id: str
    event_id: str
    at: datetime
    attributes: dict[str, Any] = field(default_factory=dict)


async def fire(uow: Uow, trigger: str, hits: Sequence[Hit], *, holdout_share: float) -> int:
    """Start the journeys ``hits`` trigger; returns the contacts created (new ones only)."""
    assert trigger in TRIGGERS, trigger
    if not hits:
        return 0
    campaigns = await uow.repo.active_triggered(trigger)
    rows = []
    for campaign in campaigns:
        schedule, rules = campaign["schedule"], campaign["rules"]
        wait = timedelta(seconds=float(schedule.get("wait_s") or 0))
        for hit in hits:
            if not trigger_matches(schedule, hit.attributes):
                continue
            rows.append({
                "campaign_id": campaign["campaign_id"], "occurrence_key": f"event:{hit.event_id}",
                "customer_id": hit.customer_id, "due_at": hit.at + wait, "created_at": hit.at,
                "attributes": hit.attributes,
                "group_name": assign_group(campaign["campaign_id"], hit.customer_id,
                                           float(rules.get("control_share", 0.0)), holdout_share)})
    return await uow.repo.add_contacts(rows)
