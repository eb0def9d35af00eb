"""The tickets policy: business-hours calendar, SLA targets, priorities, workflow. Pure; no I/O.

SLA clocks run in **business time**: only inside the calendar's working hours, in its time zone,
never on weekends or holidays. ``BusinessCalendar.add`` finds when a target falls due;
``BusinessCalendar.between`` measures how much business time passed (used when a paused clock
resumes). The whole policy is one document, replaced over HTTP by supervisors.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_shared.errors import ConflictError, PreconditionFailed
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

Priority = Literal["low", "normal", "high", "urgent"]
PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")
Status = Literal["new", "open", "pending_customer", "resolved", "closed"]
ACTIVE = ("new", "open", "pending_customer")

# Which status may follow which. Reopening (resolved or closed → open) is also bounded in time.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"open", "pending_customer", "resolved"}),
    "open": frozenset({"pending_customer", "resolved"}),
    "pending_customer": frozenset({"open", "resolved"}),
    "resolved": frozenset({"open", "closed"}),
    "closed": frozenset({"open"}),
}


class IllegalTransition(ConflictError):
    """A status change the workflow does not allow now (the API answers 409 with the message)."""

    default_code = "illegal-transition"


class StalePolicy(PreconditionFailed):
    """A policy saved over a version other than the one the caller read (``If-Match``): 412."""


def check_transition(current: str, target: str, *, resolved_at: datetime | None, now: datetime,
                     reopen_days: int) -> None:
    """Raise ``IllegalTransition`` (a 409 for the caller) unless ``current → target`` is allowed now."""
    if target not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(f"a {current} ticket cannot become {target}")
    if current in ("resolved", "closed") and target == "open":
        if resolved_at is None or now - resolved_at > timedelta(days=reopen_days):
            raise IllegalTransition(f"tickets can be reopened within {reopen_days} days of resolution")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A wall-clock time of the calendar's time zone ("09:00", "18:00:00"). Not JSON Schema's "time"
# format: that one (RFC 3339 full-time) requires an offset, which working hours do not carry.
def _local_time(value: object) -> time:
    """Only a time of day without an offset: numbers (pydantic reads them as seconds, in UTC) and
    times with an offset would not compare with the calendar's local hours."""
    if isinstance(value, str):
        try:
            value = time.fromisoformat(value)
        except ValueError:
            raise ValueError("a local time HH:MM or HH:MM:SS") from None
    if not isinstance(value, time) or value.tzinfo is not None:
        raise ValueError("a local time HH:MM or HH:MM:SS, without an offset")
    return value


LocalTime = Annotated[time, BeforeValidator(_local_time), WithJsonSchema({
    "type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$",
    "description": "Local time of the calendar's time zone, HH:MM or HH:MM:SS.", "examples": ["09:00"]})]


class Hours(_Section):
    start: LocalTime
    end: LocalTime

    @model_validator(mode="after")
    def _ordered(self) -> Hours:
        if self.end <= self.start:
            raise ValueError("working hours must end after they start")
        return self


def _default_week() -> dict[int, list[Hours]]:
    return {day: [Hours(start=time(9), end=time(18))] for day in range(5)}  # Monday–Friday 9–18


class BusinessCalendar(_Section):
    timezone: str = "Asia/Shanghai"
    # ISO weekday numbers 0 (Monday) … 6 (Sunday) → working intervals; a missing day is not worked.
    week: dict[Annotated[int, Field(ge=0, le=6)], list[Hours]] = Field(default_factory=_default_week)
    holidays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _some_hours(self) -> BusinessCalendar:
        if not any(self.week.values()):
            raise ValueError("the calendar needs working hours on at least one day")
        return self

    def _intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        if day in self.holidays:
            return []
        zone = ZoneInfo(self.timezone)
        return [(datetime.combine(day, h.start, zone), datetime.combine(day, h.end, zone))
                for h in sorted(self.week.get(day.weekday(), []), key=lambda h: h.start)]

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment ``duration`` of business time after ``start`` (aware datetimes)."""
        left = duration
        day = start.astimezone(ZoneInfo(self.timezone)).date()
        for _ in range(3660):  # ten years of days: a calendar with hours always gets there sooner
            for begin, end in self._intervals(day):
                begin = max(begin, start)
                if begin >= end:
                    continue
                if end - begin >= left:
                    return begin + left
                left -= end - begin
            day += timedelta(days=1)
        raise ValueError("no business hours found within ten years")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time from ``start`` to ``end`` (zero if ``end`` is not after ``start``)."""
        total = timedelta(0)
        if end <= start:
            return total
        day = start.astimezone(ZoneInfo(self.timezone)).date()
        last = end.astimezone(ZoneInfo(self.timezone)).date()
        while day <= last:
            for begin, finish in self._intervals(day):
                overlap = min(finish, end) - max(begin, start)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total


class SlaTarget(_Section):
    """Targets in business minutes for tickets of a priority (and, if given, a customer tier)."""

    priority: Priority
    tier: str | None = None
    first_response_minutes: Annotated[int, Field(gt=0, le=60 * 24 * 60)]
    resolution_minutes: Annotated[int, Field(gt=0, le=60 * 24 * 365)]


def _default_targets() -> list[SlaTarget]:
    minutes = {"urgent": (60, 480), "high": (240, 1440), "normal": (480, 2880), "low": (1440, 5760)}
    targets = [SlaTarget(priority=p, first_response_minutes=f, resolution_minutes=r) for p, (f, r) in minutes.items()]
    # Key customers hear back within a working day whatever the priority (seed: follow-up within 24 h).
    targets += [SlaTarget(priority=p, tier=tier, first_response_minutes=min(f, 240), resolution_minutes=r)
                for tier in ("vip", "super_vip") for p, (f, r) in minutes.items()]
    return targets


class TicketsPolicy(_Section):
    calendar: BusinessCalendar = Field(default_factory=BusinessCalendar)
    sla: list[SlaTarget] = Field(default_factory=_default_targets, min_length=1)
    # A warning is raised once this share of a target has elapsed.
    warning_at: Annotated[float, Field(gt=0, lt=1)] = 0.8
    reopen_days: Annotated[int, Field(ge=0, le=365)] = 14
    # Priority: the category's base, one step up for VIP-or-higher tiers and for high churn risk.
    category_priority: dict[str, Priority] = Field(default_factory=lambda: {
        "product_quality": "high", "delivery": "normal", "price": "normal", "service_attitude": "high",
        "payment": "high", "other": "normal"})
    key_tiers: list[str] = Field(default_factory=lambda: ["vip", "super_vip"])
    # Follow-up tasks for key customers turning high-risk: due within this many hours, once per period.
    follow_up_due_hours: Annotated[int, Field(gt=0, le=24 * 30)] = 24
    follow_up_period_days: Annotated[int, Field(ge=1, le=365)] = 30

    @model_validator(mode="after")
    def _every_priority_has_a_target(self) -> TicketsPolicy:
        missing = set(PRIORITIES) - {t.priority for t in self.sla if t.tier is None}
        if missing:
            raise ValueError(f"no SLA target for any tier at priority {sorted(missing)}")
        return self

    def target(self, priority: str, tier: str | None) -> SlaTarget:
        """The most specific target: this priority and tier, else this priority for any tier."""
        for candidate in self.sla:
            if candidate.priority == priority and tier is not None and candidate.tier == tier:
                return candidate
        return next(t for t in self.sla if t.priority == priority and t.tier is None)

    def priority_for(self, category: str | None, tier: str | None, churn_level: str | None) -> str:
        rank = PRIORITIES.index(self.category_priority.get(category or "", "normal"))
        if tier in self.key_tiers:
            rank += 1
        if churn_level == "high":
            rank += 1
        return PRIORITIES[min(rank, len(PRIORITIES) - 1)]


DEFAULT_POLICY = TicketsPolicy()
