"""Plain values the use cases, the repository and the entry points pass each other (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple


@dataclass
class IdentityChange:
    """What one event or one agent's edit says about a customer; None means "not said"."""

    customer_id: str
    changed_at: datetime
    source: str                      # the event source, or agent:<id>
    email: str | None = None         # normalised
    phone: str | None = None         # normalised (E.164)
    name: str | None = None
    address: str | None = None
    birthday: date | None = None
    gender: str | None = None
    city: str | None = None
    registered_at: datetime | None = None
    consents: dict[str, bool] = field(default_factory=dict)
    tags: list[str] | None = None
    locale: str | None = None        # BCP 47 ("zh-CN"); not PII-sensitive, but kept out of logs
    time_zone: str | None = None     # IANA ("Asia/Shanghai")
    # Why its consents changed, as crm.profile.consent.changed says it: registration, update (the
    # shop's events), agent, unsubscribe. A registration announces every channel it states.
    consent_reason: str = "update"


class CustomerStats(NamedTuple):
    """A customer's purchase statistics, as ``crm.profile.customer.updated`` announces them."""

    customer_id: str
    order_count: int
    first_order_at: datetime | None
    last_order_at: datetime | None


class IdentityWrite(NamedTuple):
    """What a batch of identity changes did: the customers' statistics and the consent changes
    recorded (``domain.changes.ConsentChange``), in order."""

    stats: list[CustomerStats]
    consents: list[Any]


class TimelineEntry(NamedTuple):
    customer_id: str
    occurred_at: datetime | None
    kind: str                        # e.g. interaction.product_view, order.paid
    channel: str | None
    details: dict[str, Any]
    event_id: str


class OrderFact(NamedTuple):
    """An order as one event states it (placed, paid or completed at ``at``)."""

    order_id: str
    customer_id: str
    currency: str
    total_amount: Decimal
    at: datetime
    channel: str | None
    items: list[dict[str, Any]]


class RefundRequest(NamedTuple):
    """What one order is given back in a batch (capped at what is left of it by the repository)."""

    order_id: str
    amount: Decimal
    at: datetime
    cancelled: bool


class CategoryView(NamedTuple):
    customer_id: str
    category: str
    viewed_at: datetime


class MergeCandidate(NamedTuple):
    """One profile of a merge or unmerge, locked."""

    customer_id: str
    email_bidx: bytes | None
    phone_bidx: bytes | None
    erased_at: datetime | None
    merged_into: str | None
    order_count: int
    refunded_order_count: int
    first_order_at: datetime | None
    last_order_at: datetime | None


class MergeInForce(NamedTuple):
    id: int
    identifier: str
    moved: dict[str, Any]            # empty: made before unmerging existed


class GroupMember(NamedTuple):
    """A profile an erasure covers: the survivor or one merged into it."""

    customer_id: str
    erased_at: datetime | None
    merged_into: str | None


@dataclass(frozen=True, slots=True)
class ErasureGroup:
    survivor: str
    merged: list[str]           # the duplicates merged into it
    newly_erased: bool          # False when the survivor was erased before (nothing to announce)
    erased_at: datetime | None  # of the earlier erasure
