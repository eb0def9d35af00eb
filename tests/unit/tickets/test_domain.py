"""The tickets rules without a database: business-hours calendar, SLA targets, priorities, workflow."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from crm_tickets.domain.policy import (
    BusinessCalendar,
    Hours,
    IllegalTransition,
    SlaTarget,
    TicketsPolicy,
    check_transition,
)
from pydantic import ValidationError

NEW_YORK = ZoneInfo("America/New_York")
# Mon–Fri 9:00–12:00 and 13:00–17:00 in New York; Thanksgiving 2026 (Thursday 26 Nov) is a holiday.
CALENDAR = BusinessCalendar(timezone="America/New_York",
                            week={d: [Hours(start=time(9), end=time(12)), Hours(start=time(13), end=time(17))]
                                  for d in range(5)},
                            holidays=[date(2026, 11, 26)])


def test_due_time_skips_the_weekend_lunch_and_a_holiday_in_the_calendars_time_zone():
    friday_afternoon = datetime(2026, 11, 20, 16, 0, tzinfo=NEW_YORK)  # 21:00 UTC
    # 8 business hours: Fri 16–17 (1), Mon 9–12 (3) and 13–17 (4) → Monday 17:00 New York.
    assert CALENDAR.add(friday_afternoon, timedelta(hours=8)) == datetime(2026, 11, 23, 17, 0, tzinfo=NEW_YORK)
    wednesday = datetime(2026, 11, 25, 15, 0, tzinfo=NEW_YORK)
    # Wed 15–17 (2), Thursday is Thanksgiving, Fri 9–12 (3) → 1 h into Friday afternoon: 14:00.
    due = CALENDAR.add(wednesday, timedelta(hours=6))
    assert due == datetime(2026, 11, 27, 14, 0, tzinfo=NEW_YORK)
    assert due.astimezone(UTC) == datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
    assert CALENDAR.between(wednesday, due) == timedelta(hours=6)


def test_outside_hours_the_clock_starts_at_the_next_opening_and_dst_is_respected():
    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=NEW_YORK)
    assert CALENDAR.add(saturday, timedelta(minutes=30)) == datetime(2026, 3, 9, 9, 30, tzinfo=NEW_YORK)
    # 8 March 2026 is the DST change: Monday 9:00 is 13:00 UTC (it was 14:00 UTC on the Friday).
    assert CALENDAR.add(saturday, timedelta(0)).astimezone(UTC).hour == 13


def test_business_time_between_ignores_nights_and_weekends():
    start = datetime(2026, 11, 20, 16, 30, tzinfo=NEW_YORK)
    assert CALENDAR.between(start, datetime(2026, 11, 23, 9, 30, tzinfo=NEW_YORK)) == timedelta(hours=1)
    assert CALENDAR.between(start, start - timedelta(hours=1)) == timedelta(0)


def test_priority_comes_from_category_tier_and_churn_risk():
    policy = TicketsPolicy()
    assert policy.priority_for("delivery", None, None) == "normal"
    assert policy.priority_for("delivery", "vip", None) == "high"
    assert policy.priority_for("product_quality", "super_vip", "high") == "urgent"
    assert policy.priority_for(None, None, "high") == "high"


def test_the_most_specific_sla_target_wins():
    policy = TicketsPolicy()
    assert policy.target("normal", None).first_response_minutes == 480
    assert policy.target("normal", "vip").first_response_minutes == 240
    assert policy.target("normal", "unknown-tier").first_response_minutes == 480
    with pytest.raises(ValidationError, match="no SLA target"):
        TicketsPolicy(sla=[SlaTarget(priority="low", first_response_minutes=1, resolution_minutes=2)])
    with pytest.raises(ValidationError, match="unknown time zone"):
        BusinessCalendar(timezone="Mars/Olympus")


def test_illegal_transitions_and_the_reopen_window():
    now = datetime(2026, 11, 23, tzinfo=UTC)
    check_transition("new", "open", resolved_at=None, now=now, reopen_days=14)
    check_transition("resolved", "open", resolved_at=now - timedelta(days=3), now=now, reopen_days=14)
    for current, target in (("new", "closed"), ("closed", "resolved"), ("open", "new"), ("pending_customer", "closed")):
        with pytest.raises(IllegalTransition):
            check_transition(current, target, resolved_at=None, now=now, reopen_days=14)
    with pytest.raises(IllegalTransition, match="within 14 days"):
        check_transition("closed", "open", resolved_at=now - timedelta(days=15), now=now, reopen_days=14)


@pytest.mark.parametrize("value", [0, 32400, "09:00+02:00", time(9, tzinfo=UTC), "nine", None])
def test_working_hours_are_local_times_of_day_only(value):
    # Found by schemathesis: an int end (read as seconds in UTC) made the ordering check raise a
    # TypeError, a 500; and JSON Schema's "time" format demands an offset the hours never carry.
    with pytest.raises(ValidationError):
        Hours(start="09:00", end=value)
    assert Hours(start="09:00", end="18:00:30").end == time(18, 0, 30)
    assert "format" not in Hours.model_json_schema()["properties"]["end"]
