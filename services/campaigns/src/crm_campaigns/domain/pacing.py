"""Pacing: frequency caps, quiet hours and retry backoff.

- A frequency cap allows at most ``cap`` sends to one customer in any sliding ``window``.
- Quiet hours are in the customer's local time and may wrap midnight (21:00–09:00). A message due
  inside them waits until they end; the end is computed as a local wall-clock time and converted
  with zoneinfo, so it is right across DST changes.
- Backoff is exponential with full jitter (AWS architecture blog, "Exponential Backoff and Jitter"):
  the delay is uniform in [0, min(cap, base · 2^(attempt−1))]; the caller passes the random number,
  which keeps this module pure and its tests exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

from crm_campaigns.domain.calendar import DEFAULT_TIME_ZONE, zone


def within_cap(recent_sends: Sequence[datetime], now: datetime, cap: int | None, window: timedelta) -> bool:
    """Whether one more send at ``now`` keeps the customer within ``cap`` sends per ``window``.

    Sends in (now − window, now] count; ``cap`` None means no cap, 0 means never.
    """
    if cap is None:
        return True
    if cap < 0 or window <= timedelta(0):
        raise ValueError("cap must be >= 0 and window positive")
    start = now - window
    return sum(1 for sent in recent_sends if start < sent <= now) < cap


def in_quiet_hours(local: time, quiet_start: time | None, quiet_end: time | None) -> bool:
    """Whether the local wall-clock time is inside [start, end); the span wraps midnight when end < start.

    No quiet hours when either bound is None or both are equal.
    """
    if quiet_start is None or quiet_end is None or quiet_start == quiet_end:
        return False
    local = local.replace(tzinfo=None)
    if quiet_start < quiet_end:
        return quiet_start <= local < quiet_end
    return local >= quiet_start or local < quiet_end


def next_allowed_time(now_utc: datetime, time_zone: str | None, quiet_start: time | None,
                      quiet_end: time | None, default_tz: str = DEFAULT_TIME_ZONE) -> datetime:
    """``now_utc`` if the customer's local time is outside quiet hours, else the UTC instant they end.

    The result is timezone-aware (UTC) and never earlier than ``now_utc``. DST: an end in a gap (a
    wall-clock time that does not exist that night) is read with the offset before the change, as
    zoneinfo does (02:30 on a spring-forward night is 03:30 summer time); an end that occurs twice on a
    fall-back night is its first occurrence, or the second when the first has already passed.
    """
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware")
    tz = zone(time_zone, default_tz)
    local = now_utc.astimezone(tz)
    if not in_quiet_hours(local.time(), quiet_start, quiet_end):
        return now_utc.astimezone(UTC)
    assert quiet_start is not None and quiet_end is not None
    end_day = local.date()
    if quiet_end < quiet_start and local.time().replace(tzinfo=None) >= quiet_start:
        end_day += timedelta(days=1)  # wrapped: we are before midnight, they end tomorrow
    now = now_utc.astimezone(UTC)
    wall = datetime.combine(end_day, quiet_end.replace(tzinfo=None), tzinfo=tz)
    for fold in (0, 1):
        end = wall.replace(fold=fold).astimezone(UTC)
        if end > now:
            return end
    return now


def backoff_delay(attempt: int, base_s: float = 2.0, cap_s: float = 600.0, jitter: float = 1.0) -> float:
    """Seconds to wait before retry ``attempt`` (1 = the first retry): ``jitter`` × min(cap, base × 2^(attempt−1)).

    ``jitter`` is a random number in [0, 1] drawn by the caller (1.0 gives the ceiling itself).
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be in [0, 1]")
    if base_s < 0 or cap_s < 0:
        raise ValueError("base_s and cap_s cannot be negative")
    exponent = min(attempt - 1, 64)  # 2**64 × base exceeds any sane cap; avoids float overflow
    return jitter * min(cap_s, base_s * 2.0 ** exponent)
