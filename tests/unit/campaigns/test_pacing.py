"""Pacing: frequency caps over a sliding window, quiet hours in local time (wrapping, DST), backoff."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from crm_campaigns.domain.pacing import backoff_delay, in_quiet_hours, next_allowed_time, within_cap

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
BERLIN = ZoneInfo("Europe/Berlin")


def test_no_cap_always_allows():
    assert within_cap([NOW] * 100, NOW, None, DAY)


def test_cap_counts_sends_in_the_sliding_window():
    sends = [NOW - timedelta(hours=1), NOW - timedelta(days=2), NOW - timedelta(days=6, hours=23)]
    assert not within_cap(sends, NOW, 3, WEEK)
    assert within_cap(sends, NOW, 4, WEEK)
    assert within_cap(sends, NOW, 2, DAY)       # only one in the last day
    assert not within_cap(sends, NOW, 1, DAY)


def test_window_bounds_exclude_the_start_and_the_future():
    assert within_cap([NOW - WEEK], NOW, 1, WEEK)                 # exactly a window ago: out
    assert not within_cap([NOW - WEEK + timedelta(seconds=1)], NOW, 1, WEEK)
    assert within_cap([NOW + timedelta(minutes=1)], NOW, 1, WEEK)  # scheduled later: not a past send


def test_cap_zero_never_allows_and_bad_arguments_fail():
    assert not within_cap([], NOW, 0, DAY)
    with pytest.raises(ValueError):
        within_cap([], NOW, -1, DAY)
    with pytest.raises(ValueError):
        within_cap([], NOW, 1, timedelta(0))


@pytest.mark.parametrize(("local", "start", "end", "quiet"), [
    (time(22, 0), time(21, 0), time(9, 0), True),
    (time(21, 0), time(21, 0), time(9, 0), True),
    (time(3, 0), time(21, 0), time(9, 0), True),
    (time(9, 0), time(21, 0), time(9, 0), False),
    (time(12, 0), time(21, 0), time(9, 0), False),
    (time(13, 0), time(12, 0), time(14, 0), True),
    (time(14, 0), time(12, 0), time(14, 0), False),
    (time(11, 59), time(12, 0), time(14, 0), False),
    (time(3, 0), None, time(9, 0), False),
    (time(3, 0), time(9, 0), time(9, 0), False),
])
def test_in_quiet_hours(local, start, end, quiet):
    assert in_quiet_hours(local, start, end) is quiet


def test_outside_quiet_hours_is_now():
    now = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
    assert next_allowed_time(now, "Asia/Shanghai", time(21), time(9)) == now
    assert next_allowed_time(now, "Asia/Shanghai", None, None) == now


def test_quiet_hours_before_midnight_end_the_next_morning():
    now = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
    assert next_allowed_time(now, "Asia/Shanghai", time(21), time(9)) == datetime(2026, 12, 8, 1, 0, tzinfo=UTC)


def test_quiet_hours_after_midnight_end_the_same_morning():
    now = datetime(2026, 12, 7, 18, 30, tzinfo=UTC)  # 02:30 on the 8th in Shanghai
    assert next_allowed_time(now, "Asia/Shanghai", time(21), time(9)) == datetime(2026, 12, 8, 1, 0, tzinfo=UTC)


def test_quiet_hours_within_a_day():
    now = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)  # 13:00 in Shanghai
    assert next_allowed_time(now, "Asia/Shanghai", time(12), time(14)) == datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


def test_unknown_zone_uses_the_default():
    now = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
    assert next_allowed_time(now, "Nowhere/Special", time(21), time(9)) == datetime(2026, 12, 8, 1, tzinfo=UTC)
    assert next_allowed_time(now, None, time(21), time(9), default_tz="UTC") == now


def test_quiet_hours_across_spring_forward():
    # Berlin, 29 March 2026: clocks go 02:00 CET → 03:00 CEST. 22:00 CET the evening before is 21:00 UTC.
    now = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)
    assert next_allowed_time(now, "Europe/Berlin", time(21), time(9)) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)


def test_quiet_hours_across_fall_back():
    # Berlin, 25 October 2026: clocks go 03:00 CEST → 02:00 CET. 09:00 CET is 08:00 UTC.
    now = datetime(2026, 10, 24, 20, 0, tzinfo=UTC)  # 22:00 CEST
    assert next_allowed_time(now, "Europe/Berlin", time(21), time(9)) == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)


def test_an_end_inside_the_dst_gap():
    # New York, 8 March 2026: 02:00 EST → 03:00 EDT; 02:30 does not exist and reads as 03:30 EDT (07:30 UTC).
    now = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST
    assert next_allowed_time(now, "America/New_York", time(23), time(2, 30)) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_an_end_that_happens_twice_on_fall_back():
    # New York, 1 November 2026: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    first = datetime(2026, 11, 1, 5, 15, tzinfo=UTC)   # 01:15 EDT
    assert next_allowed_time(first, "America/New_York", time(23), time(1, 30)) == first + timedelta(minutes=15)
    second = datetime(2026, 11, 1, 6, 15, tzinfo=UTC)  # 01:15 EST, the first 01:30 has passed
    assert next_allowed_time(second, "America/New_York", time(23), time(1, 30)) == second + timedelta(minutes=15)


def test_next_allowed_time_is_utc_and_needs_an_aware_now():
    now = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)
    assert next_allowed_time(now, "Asia/Shanghai", time(21), time(9)).tzinfo is UTC
    with pytest.raises(ValueError):
        next_allowed_time(datetime(2026, 12, 7, 20), "Asia/Shanghai", time(21), time(9))


def test_next_allowed_time_is_never_in_the_past_over_a_year():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for hours in range(0, 24 * 365, 7):
        now = start + timedelta(hours=hours, minutes=13)
        allowed = next_allowed_time(now, "Europe/Berlin", time(21), time(9))
        assert allowed >= now
        assert allowed - now <= timedelta(hours=13)
        assert not in_quiet_hours(allowed.astimezone(BERLIN).time(), time(21), time(9))


def test_backoff_is_exponential_up_to_the_cap():
    assert [backoff_delay(attempt) for attempt in range(1, 12)] == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]
    assert backoff_delay(10_000) == 600


def test_backoff_full_jitter_scales_the_ceiling():
    assert backoff_delay(3, jitter=0.0) == 0.0
    assert backoff_delay(3, jitter=0.25) == 2.0
    assert backoff_delay(3, base_s=1.0, cap_s=5.0, jitter=0.5) == 2.0


@pytest.mark.parametrize(("attempt", "jitter"), [(0, 0.5), (1, -0.1), (1, 1.5)])
def test_backoff_rejects_bad_arguments(attempt, jitter):
    with pytest.raises(ValueError):
        backoff_delay(attempt, jitter=jitter)
