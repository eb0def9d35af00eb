"""The profile service's events (``crm.profile.*``): statistics, erasure, merges, birthdays and
segments. Ids, counts and dates only: no PII on the bus. (``crm.profile.consent.changed``, read by
the campaigns service, is in ``campaigns.py``.)"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from crm_shared.events.fields import AwareDatetime, CustomerId, EventData


class ProfileCustomerUpdatedData(EventData):
    """``crm.profile.customer.updated``: the purchase statistics after a change. No PII on the bus."""

    customer_id: CustomerId
    changed: list[str]
    order_count: int
    total_spent: dict[str, str]
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None


class ProfileCustomerErasedData(EventData):
    """``crm.profile.customer.erased``: the customer's personal data was erased; every service
    holding some erases it too, for ``customer_id`` and every id in ``merged_customer_ids`` (the
    duplicates merged into it, whose data may still be kept under their own ids), and keeps
    those ids as erased so that later events about them store no personal data. Carries ids only."""

    customer_id: CustomerId
    erased_at: AwareDatetime
    merged_customer_ids: list[CustomerId] = Field(default_factory=list, max_length=1000)

    @property
    def erased_ids(self) -> list[str]:
        return [self.customer_id, *self.merged_customer_ids]


class ProfileCustomerMergedData(EventData):
    """``crm.profile.customer.merged``: a duplicate profile was merged into another; services
    keyed by customer id move what they hold for ``merged_customer_id`` to ``customer_id``."""

    customer_id: CustomerId
    merged_customer_id: CustomerId
    merged_at: AwareDatetime


class ProfileBirthdayChangedData(EventData):
    """``crm.profile.customer.birthday_changed``: an agent corrected a customer's birthday in the
    profile. Carries the month and day only (what the loyalty service's birthday job needs), never
    the year or any other personal data."""

    customer_id: CustomerId
    month: Annotated[int, Field(ge=1, le=12)]
    day: Annotated[int, Field(ge=1, le=31)]
    changed_at: AwareDatetime

    @model_validator(mode="after")
    def _a_real_day(self) -> ProfileBirthdayChangedData:
        date(2000, self.month, self.day)  # a leap year: 29 February is a birthday too
        return self


class ProfileCustomerUnmergedData(EventData):
    """``crm.profile.customer.unmerged``: a supervisor undid the merge of ``unmerged_customer_id``
    into ``customer_id``; services move back what they moved for that merge (what happened to
    the survivor since stays with it). Carries the ids only; the reason stays in the profile."""

    customer_id: CustomerId
    unmerged_customer_id: CustomerId
    unmerged_at: AwareDatetime


class ProfileSegmentChangedData(EventData):
    """``crm.profile.segment.entered`` / ``crm.profile.segment.exited``: a customer joined or left a
    segment (``rfm:<name>`` for the RFM segments, otherwise a custom segment's id)."""

    customer_id: CustomerId
    segment_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    at: AwareDatetime
