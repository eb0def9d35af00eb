"""What a campaign is and how it moves: kinds, triggers, actions, rules, and the lifecycle.

draft → (activate) → active, or awaiting_approval when its audience is larger than the approval
threshold → (a supervisor approves) → active ⇄ paused; a one-shot campaign is completed once its
contacts are all handled. Pure rules, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

KINDS = ("one_shot", "recurring", "triggered")
STATUSES = ("draft", "awaiting_approval", "active", "paused", "completed")
CHANNELS = ("email", "sms", "webhook", "notification")
# Channels whose delivery needs the customer's consent and address from the profile.
CONSENTED_CHANNELS = {"email": "email", "sms": "sms"}

# What starts a triggered journey, and the attribute each may be filtered on.
TRIGGERS = {
    "segment_entered": "segment_id",   # crm.profile.segment.entered
    "churn_high": None,                # crm.churn.risk.changed to high
    "ticket_resolved": "kind",         # crm.tickets.ticket.resolved
    "order_completed": None,           # commerce.order.completed
    "tier_changed": "new_tier",        # crm.loyalty.tier.changed
    "notification": "kind",            # crm.notification.requested (points_expiring, win_back_offer, …)
}
# The care calendar's occasions (recurring campaigns).
OCCASIONS = ("birthday", "holiday", "member_day", "anniversary")
# In the order they run: a coupon first (the message may show its code), the message last.
ACTION_ORDER = ("coupon", "bonus_points", "callback_task", "message")


class CampaignRuleError(ValueError):
    """A campaign definition or a transition the rules refuse; the message says why."""


def trigger_matches(schedule: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
    """Whether an event's attributes pass the trigger's filter (``schedule["match"]``: values)."""
    attribute = TRIGGERS.get(schedule.get("trigger", ""))
    wanted = schedule.get("match") or []
    return attribute is None or not wanted or attributes.get(attribute) in wanted


def ordered_actions(actions: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(actions, key=lambda a: ACTION_ORDER.index(a["kind"]))


def check_definition(kind: str, schedule: Mapping[str, Any], actions: list[Mapping[str, Any]],
                     *, template_channel: str | None, has_audience: bool) -> None:
    """Raise :class:`CampaignRuleError` unless the parts fit together."""
    if kind not in KINDS:
        raise CampaignRuleError(f"kind must be one of {', '.join(KINDS)}")
    if not actions:
        raise CampaignRuleError("a campaign needs at least one action")
    kinds = [a["kind"] for a in actions]
    if len(set(kinds)) != len(kinds):
        raise CampaignRuleError("each action kind may appear once")
    if "message" in kinds and template_channel is None:
        raise CampaignRuleError("a message action needs a template")
    if kind == "triggered":
        if schedule.get("trigger") not in TRIGGERS:
            raise CampaignRuleError(f"a triggered campaign needs a trigger: one of {', '.join(TRIGGERS)}")
    elif not has_audience:
        raise CampaignRuleError("a one-shot or recurring campaign needs an audience")
    if kind == "recurring" and schedule.get("occasion") not in OCCASIONS:
        raise CampaignRuleError(f"a recurring campaign needs an occasion: one of {', '.join(OCCASIONS)}")
    if kind == "recurring" and schedule.get("occasion") == "member_day" and not schedule.get("day_of_month"):
        raise CampaignRuleError("a member day needs its day_of_month")


def after_activation(estimated_size: int, threshold: int, *, approved: bool) -> str:
    """The status an activated campaign takes: above the threshold it waits for a supervisor."""
    return "active" if approved or estimated_size <= threshold else "awaiting_approval"


TRANSITIONS = {
    "activate": {"draft", "paused"},
    "approve": {"awaiting_approval"},
    "pause": {"active", "awaiting_approval"},
    "resume": {"paused"},
}


def check_transition(action: str, status: str) -> None:
    if status not in TRANSITIONS[action]:
        raise CampaignRuleError(f"a campaign that is {status} cannot be {action}d")


def local_clock(now_utc: datetime, time_zone: str | None, default_zone: str) -> datetime:
    """The customer's wall clock (an unknown or missing zone: the shop's default)."""
    try:
        zone = ZoneInfo(time_zone or default_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo(default_zone)
    return now_utc.astimezone(zone)


def send_time_reached(local_now: datetime, send_local_time: str | None) -> bool:
    """Whether a recurring campaign's local sending time ("09:00") has come on this local day."""
    hours, minutes = (int(p) for p in (send_local_time or "09:00").split(":"))
    return (local_now.hour, local_now.minute) >= (hours, minutes)
