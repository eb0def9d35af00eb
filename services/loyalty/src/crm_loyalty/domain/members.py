"""A locked member's state as the use cases work on it, and the points a redemption spent. Pure data.

The repository loads both (locked, in customer-id order) and writes back what changed; the rules
that change them live in ``ledger.py``, ``tiers.py`` and the use cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from crm_shared.events.envelope import CloudEvent

from crm_loyalty.domain.ledger import Book


@dataclass(slots=True, eq=False)
class Member:
    """A locked account: its points book plus tier and birthday state."""

    book: Book
    tier: str
    tier_since: datetime
    below_tier_since: datetime | None
    birthday: date | None
    birthday_bonus_year: int | None
    erased_at: datetime | None
    birthday_greeted_year: int | None = None
    events: list[CloudEvent] = field(default_factory=list)  # besides the movement events
    traceparent: str | None = None
    # Tier-up bonuses owed, (tier reached, at, points, expiry months): granted once each on save.
    tier_ups: list[tuple[str, datetime, int, int]] = field(default_factory=list)

    @property
    def customer_id(self) -> str:
        return self.book.customer_id


@dataclass(slots=True)
class Spent:
    """A redemption's points and the lots they came from, locked, with what came back so far."""

    redemption_id: str
    customer_id: str
    order_id: str | None
    points: int
    returned: int
    status: str
    currency: str | None
    money_value: Decimal | None
    lots: list[tuple[int, int]]   # (lot id, points still out of it)
