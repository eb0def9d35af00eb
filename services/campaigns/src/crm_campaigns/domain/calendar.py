"""The care calendar: which occasions fall on a customer's local date, and the key of each occurrence.

A recurring campaign (birthday, holiday greeting, member day, anniversary) contacts a customer once per
occurrence; ``occurrence_key`` names the occurrence, and (campaign, occurrence, customer) is unique in
the campaigns database, so a rerun of the daily sweep never sends twice.

Chinese public holidays come from the ``holidays`` library (it computes the lunar ones: Spring
Festival, Dragon Boat, Mid-Autumn). A multi-day holiday is one occasion, on its FIRST day: the
greeting is sent once, and the in-lieu and "observed" days the library also lists are not occasions.
Western occasions are fixed rules computed here (they are shopping occasions, not public holidays
of one country).
"""

from __future__ import annotations

import calendar as stdlib_calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

DEFAULT_TIME_ZONE = "Asia/Shanghai"
CALENDARS = ("CN", "WESTERN")

# The library's English names (language="en_US") → stable slugs; a name not listed is slugified.
_CN_SLUGS = {
    "New Year's Day": "new_year",
    "Chinese New Year's Eve": "spring_festival_eve",
    "Chinese New Year (Spring Festival)": "spring_festival",
    "Tomb-Sweeping Day": "qingming",
    "Labor Day": "labour_day",
    "Dragon Boat Festival": "dragon_boat",
    "Mid-Autumn Festival": "mid_autumn",
    "National Day": "national_day",
}
# Days the library lists that are not occasions: days off in lieu and "observed" extensions.
_NOT_AN_OCCASION = re.compile(r"\(observed\)|day off|substitut", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Holiday:
    key: str    # stable, e.g. "cn:spring_festival", "western:christmas"
    name: str   # English display name


def zone(time_zone: str | None, default_tz: str = DEFAULT_TIME_ZONE) -> ZoneInfo:
    """The zone named ``time_zone``; the default zone when it is missing, malformed or unknown."""
    if time_zone:
        try:
            return ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
            pass
    return ZoneInfo(default_tz)


def local_date(now_utc: datetime, time_zone: str | None, default_tz: str = DEFAULT_TIME_ZONE) -> date:
    """The calendar date at ``now_utc`` (timezone-aware) in the customer's zone (or the default)."""
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware")
    return now_utc.astimezone(zone(time_zone, default_tz)).date()


def _celebrated(month: int, day: int, year: int) -> date:
    """The date a yearly (month, day) is celebrated in ``year``: 29 February becomes 28 in common years."""
    if month == 2 and day == 29 and not stdlib_calendar.isleap(year):
        return date(year, 2, 28)
    return date(year, month, day)


def is_birthday(month: int, day: int, on: date) -> bool:
    """Whether ``on`` is the birthday (month, day); a 29 February birthday is on 28 February in common years."""
    date(2000, month, day)  # validates (2000 is a leap year, so 29 Feb passes)
    return _celebrated(month, day, on.year) == on


def is_anniversary(registered_on: date, on: date) -> int | None:
    """The number of years (>= 1) when ``on`` is an anniversary of ``registered_on``, else None (same 29 Feb rule)."""
    years = on.year - registered_on.year
    if years < 1:
        return None
    return years if _celebrated(registered_on.month, registered_on.day, on.year) == on else None


def is_member_day(on: date, day_of_month: int) -> bool:
    """Whether ``on`` is the monthly member day; a day past the month's end (29–31) falls on its last day."""
    if not 1 <= day_of_month <= 31:
        raise ValueError("day_of_month must be between 1 and 31")
    last = stdlib_calendar.monthrange(on.year, on.month)[1]
    return on.day == min(day_of_month, last)


def holidays_on(on: date, calendars: Iterable[str]) -> list[Holiday]:
    """The occasions of the given calendars ("CN", "WESTERN") that fall on ``on``, sorted by key."""
    found: set[Holiday] = set()
    for name in calendars:
        upper = name.upper()
        if upper == "CN":
            found |= {holiday for day, holiday in _chinese_occasions(on.year) if day == on}
        elif upper == "WESTERN":
            found |= {holiday for day, holiday in _western_occasions(on.year) if day == on}
        else:
            raise ValueError(f"unknown calendar {name!r}; expected one of {', '.join(CALENDARS)}")
    return sorted(found)


@lru_cache(maxsize=16)
def _chinese_occasions(year: int) -> tuple[tuple[date, Holiday], ...]:
    first_days: dict[str, tuple[date, Holiday]] = {}
    for day, names in sorted(holidays.China(years=year, language="en_US").items()):
        for name in names.split("; "):  # the library joins two holidays of one day with "; "
            if _NOT_AN_OCCASION.search(name):
                continue
            slug = _CN_SLUGS.get(name) or _slug(name)
            first_days.setdefault(slug, (day, Holiday(f"cn:{slug}", name)))
    return tuple(first_days.values())


@lru_cache(maxsize=16)
def _western_occasions(year: int) -> tuple[tuple[date, Holiday], ...]:
    thanksgiving = _nth_weekday(year, 11, stdlib_calendar.THURSDAY, 4)
    return (
        (date(year, 1, 1), Holiday("western:new_year", "New Year's Day")),
        (date(year, 2, 14), Holiday("western:valentines_day", "Valentine's Day")),
        (_nth_weekday(year, 5, stdlib_calendar.SUNDAY, 2), Holiday("western:mothers_day", "Mother's Day")),
        (thanksgiving + timedelta(days=1), Holiday("western:black_friday", "Black Friday")),
        (date(year, 12, 25), Holiday("western:christmas", "Christmas Day")),
    )


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def occurrence_key(kind: str, on: date, detail: str | None = None) -> str:
    """The key of one occurrence of a recurring campaign (with the customer id it makes a contact unique).

    ``birthday:2026-12-07``, ``anniversary:2026-12-07``, ``holiday:cn:spring_festival:2027-02-06`` (detail =
    the holiday key), ``member_day:2026-12`` (one per month). Other kinds: ``kind[:detail]:YYYY-MM-DD``.
    """
    if not kind or ":" in kind:
        raise ValueError("kind must be a non-empty word without ':'")
    if kind == "member_day":
        return f"member_day:{on:%Y-%m}"
    if kind == "holiday" and not detail:
        raise ValueError("a holiday occurrence needs the holiday key as detail")
    return f"{kind}:{detail}:{on.isoformat()}" if detail else f"{kind}:{on.isoformat()}"
