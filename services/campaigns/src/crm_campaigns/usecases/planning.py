"""The planner: which customers an occurrence of a one-shot or recurring campaign is for.

An occurrence is planned in pages of customer ids, one transaction each; its cursor is kept with
it, so a planner killed halfway goes on where it stopped, and the contacts' key (campaign,
occurrence, customer) makes a page planned twice add nothing. Recurring campaigns are planned per
time zone: a birthday is greeted on the customer's own day, once the campaign's local sending time
has come there. Contacts are assigned to the treatment, the control group or the global holdout
here, and recorded for all three.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from crm_campaigns.domain import calendar
from crm_campaigns.domain.campaigns import local_clock, send_time_reached
from crm_campaigns.domain.groups import assign_group
from crm_campaigns.repository.audiences import Occasion

if TYPE_CHECKING:
    from crm_shared.uow import UnitOfWork

    from crm_campaigns.repository import CampaignsRepository

    Units = Callable[..., AbstractAsyncContextManager[UnitOfWork[CampaignsRepository]]]


async def plan(units: Units, now: datetime, *, default_zone: str, holdout_share: float, chunk: int) -> int:
    """Plan every occurrence that is due; returns the contacts added."""
    async with units(read_only=True) as uow:
        one_shots = await uow.repo.active_campaigns("one_shot")
        recurring = await uow.repo.active_campaigns("recurring")
        zones = await uow.repo.time_zones() if recurring else []
    added = 0
    for campaign in one_shots:
        send_at = campaign["schedule"].get("send_at")
        if send_at is None or datetime.fromisoformat(send_at) <= now:
            added += await plan_occurrence(units, campaign, "once", None, now, holdout_share=holdout_share,
                                           chunk=chunk)
    for campaign in recurring:
        for zone in zones:
            local_now = local_clock(now, zone, default_zone)
            if not send_time_reached(local_now, campaign["schedule"].get("send_local_time")):
                continue
            for key, occasion in occasions(campaign["schedule"], zone, local_now.date()):
                added += await plan_occurrence(units, campaign, f"{key}@{zone or '-'}", occasion, now,
                                               holdout_share=holdout_share, chunk=chunk)
    async with units() as uow:
        await uow.repo.complete_one_shots(now)
        await uow.commit()
    return added


def occasions(schedule: dict[str, Any], zone: str | None, today: date) -> list[tuple[str, Occasion]]:
    """The occurrences of a recurring campaign on a local day: (key, who it is for)."""
    occasion = schedule["occasion"]
    if occasion in ("birthday", "anniversary"):
        days = [(m, d) for m, d in _month_days(today) if calendar.is_birthday(m, d, today)]
        return [(calendar.occurrence_key(occasion, today),
                 Occasion(zone, tuple(days), on=occasion, registered_before=today if occasion == "anniversary"
                          else None))]
    if occasion == "holiday":
        return [(calendar.occurrence_key("holiday", today, h.key), Occasion(zone))
                for h in calendar.holidays_on(today, schedule.get("calendars") or ["CN", "WESTERN"])]
    if occasion == "member_day" and calendar.is_member_day(today, int(schedule["day_of_month"])):
        return [(calendar.occurrence_key("member_day", today), Occasion(zone))]
    return []


def _month_days(today: date) -> list[tuple[int, int]]:
    # Today's (month, day), and 29 February on a 28 February of a common year (is_birthday decides).
    days = [(today.month, today.day)]
    if (today.month, today.day) == (2, 28):
        days.append((2, 29))
    return days


async def plan_occurrence(units: Units, campaign: dict[str, Any], key: str, occasion: Occasion | None,
                          now: datetime, *, holdout_share: float, chunk: int) -> int:
    campaign_id = campaign["campaign_id"]
    control_share = float(campaign["rules"].get("control_share", 0.0))
    added = 0
    while True:
        async with units() as uow:
            cursor, complete = await uow.repo.open_occurrence(campaign_id, key, now)
            if complete:
                await uow.commit()
                return added
            page = await uow.repo.audience_page(campaign["definition"] or {}, campaign["channel"], now, after=cursor,
                                                limit=chunk, occasion=occasion)
            new = await uow.repo.add_contacts([{
                "campaign_id": campaign_id, "occurrence_key": key, "customer_id": m.customer_id,
                "group_name": assign_group(campaign_id, m.customer_id, control_share, holdout_share),
                "due_at": now, "created_at": now} for m in page])
            await uow.repo.advance_occurrence(campaign_id, key, cursor=page[-1].customer_id if page else cursor,
                                              added=new, complete=len(page) < chunk)
            await uow.commit()
        added += new
        if len(page) < chunk:
            return added

