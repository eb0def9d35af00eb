"""Campaigns: kind, audience, template, schedule (per kind), actions and rules; their messages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationError, model_validator

from crm_campaigns.domain.campaigns import OCCASIONS, TRIGGERS
from crm_campaigns.schemas.audiences import Body, Name, ResourceId

LocalTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
MatchValue = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class OneShotSchedule(Body):
    send_at: datetime | None = Field(None, description="Absent: as soon as the campaign is activated.")

    @model_validator(mode="after")
    def _zoned(self) -> OneShotSchedule:
        if self.send_at is not None and self.send_at.tzinfo is None:
            raise ValueError("send_at must carry a timezone")
        return self


class RecurringSchedule(Body):
    occasion: Literal[OCCASIONS]  # type: ignore[valid-type]
    calendars: list[Literal["CN", "WESTERN"]] | None = Field(None, min_length=1, description="Holidays only.")
    day_of_month: Annotated[int, Field(ge=1, le=28)] | None = Field(
        None, description="Member days only (at most 28: every month has it).")
    send_local_time: LocalTime = Field("09:00", description="In the customer's time zone.")

    @model_validator(mode="after")
    def _fits_the_occasion(self) -> RecurringSchedule:
        if (self.occasion == "holiday") != (self.calendars is not None):
            raise ValueError("calendars are required for holidays and only for them")
        if (self.occasion == "member_day") != (self.day_of_month is not None):
            raise ValueError("day_of_month is required for member days and only for them")
        return self


class TriggeredSchedule(Body):
    trigger: Literal[tuple(TRIGGERS)]  # type: ignore[valid-type]
    match: Annotated[list[MatchValue], Field(min_length=1, max_length=100)] | None = Field(
        None, description="Only events whose filtered attribute is one of these (segment id, kind, tier).")
    wait_s: Annotated[int, Field(ge=0, le=30 * 86400)] = Field(0, description="Delay after the event.")

    @model_validator(mode="after")
    def _filterable(self) -> TriggeredSchedule:
        if self.match and TRIGGERS[self.trigger] is None:
            raise ValueError(f"the {self.trigger} trigger has no attribute to match")
        return self


SCHEDULES: dict[str, type[Body]] = {"one_shot": OneShotSchedule, "recurring": RecurringSchedule,
                                     "triggered": TriggeredSchedule}


class MessageAction(Body):
    kind: Literal["message"]


class CouponAction(Body):
    kind: Literal["coupon"]
    pool_id: ResourceId


class BonusPointsAction(Body):
    kind: Literal["bonus_points"]
    points: Annotated[int, Field(ge=1, le=1_000_000)]
    reason: Reason | None = None


class CallbackTaskAction(Body):
    kind: Literal["callback_task"]
    subject: Reason | None = None


Action = Annotated[MessageAction | CouponAction | BonusPointsAction | CallbackTaskAction, Field(discriminator="kind")]


class FrequencyCap(Body):
    count: Annotated[int, Field(ge=1, le=100)]
    days: Annotated[int, Field(ge=1, le=365)]


class QuietHours(Body):
    start: LocalTime = Field(description="Local time messages stop, e.g. 21:00.")
    end: LocalTime = Field(description="Local time they resume, e.g. 09:00.")

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours must start and end at different times")
        return self


class Rules(Body):
    control_share: Annotated[float, Field(ge=0, le=0.5)] = Field(0.1, description="Kept out to measure lift.")
    frequency_cap: FrequencyCap | None = Field(None, description="At most count messages per days, all campaigns.")
    quiet_hours: QuietHours | None = None
    once_per_days: Annotated[int, Field(ge=1, le=3650)] | None = Field(
        None, description="A customer is contacted by this campaign at most once in this many days.")
    conversion_days: Annotated[int, Field(ge=1, le=90)] = Field(7, description="An order within counts.")


class CampaignSettings(Body):
    name: Name
    kind: Literal["one_shot", "recurring", "triggered"]
    audience_id: ResourceId | None = None
    template_id: ResourceId | None = None
    schedule: dict[str, Any] = Field(default_factory=dict, description="Its shape depends on kind.")
    actions: Annotated[list[Action], Field(min_length=1, max_length=4)]
    rules: Rules = Field(default_factory=Rules)

    @model_validator(mode="after")
    def _schedule_of_its_kind(self) -> CampaignSettings:
        # The schedule's shape depends on a sibling field, so it is validated here, with the
        # model of its kind (its errors come back as one 422 message).
        try:
            schedule = SCHEDULES[self.kind].model_validate(self.schedule)
        except ValidationError as error:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'schedule'}: {e['msg']}" for e in error.errors())
            raise ValueError(f"a {self.kind} campaign's schedule: {reasons}") from None
        self.schedule = schedule.model_dump(mode="json", exclude_none=True)
        return self

    def stored(self, *, exclude: set[str] | None = None) -> dict[str, Any]:
        """As kept: options left out rather than null, but the audience and template always named."""
        return {"audience_id": None, "template_id": None,
                **self.model_dump(mode="json", exclude_none=True, exclude=exclude)}


class CampaignCreate(CampaignSettings):
    campaign_id: ResourceId | None = Field(None, description="Absent: a UUID is generated.")


class CampaignUpdate(CampaignSettings):
    version: int = Field(ge=1, description="The version read; another one in force answers 409.")


class CampaignRead(BaseModel):
    campaign_id: str
    name: str
    kind: str
    status: str
    audience_id: str | None
    template_id: str | None
    schedule: dict[str, Any]
    actions: list[dict[str, Any]]
    rules: dict[str, Any]
    estimated_size: int | None
    approved_by: str | None
    approved_at: datetime | None
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class MessageRead(BaseModel):
    message_id: str
    customer_id: str
    occurrence_key: str
    channel: str
    locale: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None
    bounced_at: datetime | None
    unsubscribed_at: datetime | None


class CampaignPage(BaseModel):
    items: list[CampaignRead]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end.")


class MessagePage(BaseModel):
    items: list[MessageRead]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end.")


class ContactRead(BaseModel):
    campaign_id: str
    campaign_name: str
    channel: str | None
    group: str
    status: str = Field(description="The message's status, else the contact's state (pending, done, skipped).")
    contacted_at: datetime | None


class ContactList(BaseModel):
    items: list[ContactRead]
