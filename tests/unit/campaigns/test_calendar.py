"""The care calendar: local dates, birthdays and anniversaries (29 Feb), member days, holidays, occurrence keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from crm_campaigns.domain.calendar import (
    Holiday,
    holidays_on,
    is_anniversary,
    is_birthday,
    is_member_day,
    local_date,
    occurrence_key,
)


def test_local_date_follows_the_customer_zone():
    now = datetime(2026, 12, 6, 17, 30, tzinfo=UTC)  # 01:30 on the 7th in Shanghai
    assert local_date(now, "Asia/Shanghai") == date(2026, 12, 7)
    assert local_date(now, "Europe/Berlin") == date(2026, 12, 6)
    assert local_date(now, "America/Los_Angeles") == date(2026, 12, 6)
    assert local_date(datetime(2026, 12, 7, 1, tzinfo=timezone(timedelta(hours=8))), "UTC") == date(2026, 12, 6)


@pytest.mark.parametrize("bad", [None, "", "Mars/Olympus", "../../etc/passwd", "Not a zone", "Asia/"])
def test_local_date_with_a_bad_zone_uses_the_default(bad):
    now = datetime(2026, 12, 6, 17, 30, tzinfo=UTC)
    assert local_date(now, bad) == date(2026, 12, 7)
    assert local_date(now, bad, default_tz="UTC") == date(2026, 12, 6)


def test_local_date_needs_an_aware_instant():
    with pytest.raises(ValueError):
        local_date(datetime(2026, 12, 7, 12), "UTC")


def test_birthdays():
    assert is_birthday(12, 7, date(2026, 12, 7))
    assert not is_birthday(12, 7, date(2026, 12, 8))
    assert not is_birthday(12, 7, date(2026, 7, 12))


def test_29_february_birthdays_are_celebrated_on_28_february_in_common_years():
    assert is_birthday(2, 29, date(2027, 2, 28))
    assert not is_birthday(2, 29, date(2027, 3, 1))
    assert is_birthday(2, 29, date(2028, 2, 29))
    assert not is_birthday(2, 29, date(2028, 2, 28))  # a leap year has its own 29th
    assert is_birthday(2, 28, date(2028, 2, 28))


def test_an_impossible_birthday_is_an_error():
    with pytest.raises(ValueError):
        is_birthday(2, 30, date(2026, 2, 28))
    with pytest.raises(ValueError):
        is_birthday(13, 1, date(2026, 1, 1))


def test_anniversaries_count_years():
    assert is_anniversary(date(2020, 12, 7), date(2026, 12, 7)) == 6
    assert is_anniversary(date(2025, 12, 7), date(2026, 12, 7)) == 1
    assert is_anniversary(date(2026, 12, 7), date(2026, 12, 7)) is None  # the day of registration itself
    assert is_anniversary(date(2020, 12, 7), date(2026, 12, 8)) is None
    assert is_anniversary(date(2027, 12, 7), date(2026, 12, 7)) is None


def test_29_february_anniversaries():
    assert is_anniversary(date(2024, 2, 29), date(2025, 2, 28)) == 1
    assert is_anniversary(date(2024, 2, 29), date(2025, 3, 1)) is None
    assert is_anniversary(date(2024, 2, 29), date(2028, 2, 29)) == 4
    assert is_anniversary(date(2024, 2, 29), date(2028, 2, 28)) is None


@pytest.mark.parametrize(("on", "day", "expected"), [
    (date(2026, 12, 7), 7, True),
    (date(2026, 12, 8), 7, False),
    (date(2026, 2, 28), 31, True),    # short month: the last day
    (date(2026, 2, 28), 29, True),
    (date(2028, 2, 28), 29, False),   # leap February has a 29th
    (date(2028, 2, 29), 30, True),
    (date(2026, 4, 30), 31, True),
    (date(2026, 4, 30), 30, True),
    (date(2026, 5, 30), 31, False),
    (date(2026, 5, 31), 31, True),
])
def test_member_day(on, day, expected):
    assert is_member_day(on, day) is expected


def test_member_day_is_once_a_month():
    days = [date(2026, 2, 1) + timedelta(days=i) for i in range(365)]
    for wanted in (1, 15, 29, 30, 31):
        hits = [day for day in days if is_member_day(day, wanted)]
        assert len(hits) == 12 and len({(day.year, day.month) for day in hits}) == 12


@pytest.mark.parametrize("day", [0, 32, -1])
def test_member_day_out_of_range(day):
    with pytest.raises(ValueError):
        is_member_day(date(2026, 1, 1), day)


def keys(on: date, *calendars: str) -> list[str]:
    return [holiday.key for holiday in holidays_on(on, calendars)]


@pytest.mark.parametrize(("on", "key"), [
    (date(2027, 2, 6), "cn:spring_festival"),
    (date(2026, 2, 17), "cn:spring_festival"),
    (date(2024, 2, 10), "cn:spring_festival"),
    (date(2026, 2, 16), "cn:spring_festival_eve"),
    (date(2026, 9, 25), "cn:mid_autumn"),
    (date(2027, 9, 15), "cn:mid_autumn"),
    (date(2026, 6, 19), "cn:dragon_boat"),
    (date(2026, 10, 1), "cn:national_day"),
    (date(2026, 1, 1), "cn:new_year"),
    (date(2026, 5, 1), "cn:labour_day"),
    (date(2026, 4, 5), "cn:qingming"),
])
def test_chinese_holidays(on, key):
    assert keys(on, "CN") == [key]


@pytest.mark.parametrize("on", [
    date(2027, 2, 7), date(2027, 2, 8), date(2027, 2, 10),     # later days of the Spring Festival
    date(2026, 10, 2), date(2026, 10, 5), date(2026, 10, 7),   # later, observed and in-lieu days of National Day
    date(2026, 2, 20), date(2026, 4, 6), date(2026, 12, 7),
])
def test_only_the_first_day_of_a_chinese_holiday_is_an_occasion(on):
    assert keys(on, "CN") == []


def test_each_chinese_occasion_happens_once_a_year():
    for year in (2025, 2026, 2027, 2030):
        seen: list[str] = []
        day = date(year, 1, 1)
        while day.year == year:
            seen += keys(day, "CN")
            day += timedelta(days=1)
        assert len(seen) == len(set(seen))
        assert {"cn:spring_festival", "cn:mid_autumn", "cn:dragon_boat", "cn:national_day"} <= set(seen)


@pytest.mark.parametrize(("on", "key"), [
    (date(2026, 12, 25), "western:christmas"),
    (date(2027, 1, 1), "western:new_year"),
    (date(2027, 2, 14), "western:valentines_day"),
    (date(2026, 5, 10), "western:mothers_day"),
    (date(2027, 5, 9), "western:mothers_day"),
    (date(2026, 11, 27), "western:black_friday"),
    (date(2027, 11, 26), "western:black_friday"),
    (date(2024, 11, 29), "western:black_friday"),
])
def test_western_occasions(on, key):
    assert keys(on, "WESTERN") == [key]


@pytest.mark.parametrize("on", [date(2026, 5, 3), date(2026, 11, 26), date(2026, 12, 24), date(2026, 12, 26)])
def test_near_misses_are_not_western_occasions(on):
    assert keys(on, "WESTERN") == []


def test_calendars_combine_and_are_case_insensitive():
    assert keys(date(2027, 1, 1), "CN", "western") == ["cn:new_year", "western:new_year"]
    assert keys(date(2027, 1, 1)) == []
    assert holidays_on(date(2026, 12, 25), ["WESTERN"]) == [Holiday("western:christmas", "Christmas Day")]


def test_an_unknown_calendar_is_an_error():
    with pytest.raises(ValueError, match="unknown calendar"):
        holidays_on(date(2026, 12, 25), ["US"])


def test_occurrence_keys():
    on = date(2026, 12, 7)
    assert occurrence_key("birthday", on) == "birthday:2026-12-07"
    assert occurrence_key("anniversary", on) == "anniversary:2026-12-07"
    assert occurrence_key("member_day", on) == "member_day:2026-12"
    assert occurrence_key("member_day", date(2026, 12, 31)) == occurrence_key("member_day", on)
    assert occurrence_key("holiday", date(2027, 2, 6), "cn:spring_festival") == "holiday:cn:spring_festival:2027-02-06"
    assert occurrence_key("birthday", on) != occurrence_key("birthday", date(2027, 12, 7))


@pytest.mark.parametrize(("kind", "detail"), [("", None), ("a:b", None), ("holiday", None), ("holiday", "")])
def test_bad_occurrence_keys(kind, detail):
    with pytest.raises(ValueError):
        occurrence_key(kind, date(2026, 12, 7), detail)
