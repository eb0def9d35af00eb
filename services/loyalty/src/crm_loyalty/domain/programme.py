"""The loyalty programme: earning rules, tiers, campaigns, redemption, win-back and bonus rules.

The whole programme is one versioned document. Supervisors replace it over HTTP; each change is a
new version, effective from the moment it is saved. Changes are never retroactive: an order earns
by the version in force when it was paid (business time), and points already earned stay as they
were. Pure data and validation; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from crm_shared.events.catalogue import AwareDatetime
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from crm_loyalty.domain.rules import Rules

Name = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=r"^[a-z0-9_\-]+$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Rate = Annotated[Decimal, Field(ge=0, le=1000)]
Points = Annotated[int, Field(ge=0, le=100_000_000)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Earning(_Section):
    """Base earning: points per currency unit paid in money, before the tier multiplier."""

    points_per_unit: dict[Currency, Rate] = Field(default_factory=lambda: {"CNY": Decimal(1)})
    # Extra multiplier per category on top of the tier's (0.5 = half as many points again).
    category_bonus: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], Rate] = \
        Field(default_factory=dict)
    max_points_per_order: Points | None = 100_000
    # Points stay pending until commerce.order.completed or this many days after payment.
    return_window_days: Annotated[int, Field(ge=0, le=365)] = 7
    # Points expire this many months after they became available.
    expiry_months: Annotated[int, Field(ge=1, le=120)] = 12


class Redemption(_Section):
    # Points that make one currency unit off an order (100 points = 1.00 CNY).
    points_per_unit: dict[Currency, Annotated[int, Field(ge=1, le=1_000_000)]] = \
        Field(default_factory=lambda: {"CNY": 100})
    min_points: Annotated[int, Field(ge=1)] = 1
    # Points may pay at most this share of an order's value; discounts beyond it are voided when
    # the order is paid (points back), oldest redemption kept first.
    max_order_share: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.5")
    # An order discount is held until its order is paid by the redeeming member; one whose order
    # has not been paid within this many hours is voided (points back).
    hold_hours: Annotated[int, Field(ge=1, le=24 * 366)] = 72


class Tier(_Section):
    name: Name
    # Qualifies with both: rolling paid spend (net of refunds) and paid orders in the window.
    min_spend: Annotated[Decimal, Field(ge=0)] = Decimal(0)
    min_orders: Annotated[int, Field(ge=0)] = 0
    multiplier: Annotated[Decimal, Field(ge=0, le=100)] = Decimal(1)
    birthday_bonus: Points = 0
    # The birthday job also issues one personal code a year from this coupon pool.
    birthday_coupon_pool_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] | None = None


def _default_tiers() -> list[Tier]:
    return [Tier(name="regular"),
            Tier(name="vip", min_spend=Decimal(5000), min_orders=5, multiplier=Decimal("1.5"), birthday_bonus=500),
            Tier(name="super_vip", min_spend=Decimal(20000), min_orders=12, multiplier=Decimal(2),
                 birthday_bonus=2000)]


class Tiers(_Section):
    # Spend in other currencies does not count: amounts in two currencies cannot be added
    # without a rate the CRM does not own.
    currency: Currency = "CNY"
    window_months: Annotated[int, Field(ge=1, le=60)] = 12
    # A customer below their tier keeps it this long before the daily job downgrades them.
    downgrade_grace_days: Annotated[int, Field(ge=0, le=365)] = 30
    levels: list[Tier] = Field(default_factory=_default_tiers, min_length=1, max_length=20)

    @model_validator(mode="after")
    def _ordered(self) -> Tiers:
        names = [t.name for t in self.levels]
        if len(set(names)) != len(names):
            raise ValueError("tier names must be unique")
        first = self.levels[0]
        if first.min_spend != 0 or first.min_orders != 0:
            raise ValueError("the first tier is the entry tier: min_spend and min_orders must be 0")
        for lower, higher in zip(self.levels, self.levels[1:], strict=False):
            if higher.min_spend < lower.min_spend or higher.min_orders < lower.min_orders:
                raise ValueError("tiers must be listed from the lowest to the highest threshold")
        return self

    def rank(self, name: str | None) -> int:
        for index, tier in enumerate(self.levels):
            if tier.name == name:
                return index
        return 0  # a tier removed from the programme counts as the entry tier

    def get(self, name: str | None) -> Tier:
        return self.levels[self.rank(name)]

    def qualified(self, spend: Decimal, orders: int) -> Tier:
        best = self.levels[0]
        for tier in self.levels:
            if spend >= tier.min_spend and orders >= tier.min_orders:
                best = tier
        return best


class Campaign(_Section):
    """A time-boxed bonus: an extra multiplier on orders paid within [starts_at, ends_at)."""

    id: Name
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    extra_multiplier: Rate
    categories: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(default_factory=list)
    max_points_per_order: Points | None = None

    @model_validator(mode="after")
    def _window(self) -> Campaign:
        if self.ends_at <= self.starts_at:
            raise ValueError(f"campaign {self.id}: ends_at must be after starts_at")
        return self

    def applies(self, paid_at: datetime, category: str | None) -> bool:
        return self.starts_at <= paid_at < self.ends_at and (not self.categories or category in self.categories)


class Adjustments(_Section):
    # Agents may adjust up to this many points either way; above it only supervisors may.
    agent_limit: Points = 500
    supervisor_limit: Points = 1_000_000
    # Besides the per-request limit, an agent may move at most this many points (either way, summed)
    # per period of ``agent_period_hours`` (periods aligned to the epoch: 24 = UTC days); None: no limit.
    agent_period_limit: Points | None = 5000
    agent_period_hours: Annotated[int, Field(ge=1, le=24 * 31)] = 24


class WinBack(_Section):
    """On crm.churn.risk.changed to high, for customers worth winning back."""

    enabled: bool = True
    # Rolling paid spend (tier currency and window) a customer needs to get an offer.
    min_spend: Annotated[Decimal, Field(ge=0)] = Decimal(1000)
    reward: Literal["points", "coupon"] = "points"
    points: Points = 500
    # A coupon reward issues a personal code from coupon_pool_id; coupon_code (one fixed code told
    # to everyone) is what programme versions before coupon pools used, and still works.
    coupon_pool_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] | None = None
    coupon_code: Annotated[str, StringConstraints(max_length=100)] | None = None
    period_days: Annotated[int, Field(ge=1, le=3650)] = 180

    @model_validator(mode="after")
    def _coupon(self) -> WinBack:
        if self.reward == "coupon" and not (self.coupon_pool_id or self.coupon_code):
            raise ValueError("a coupon reward needs coupon_pool_id (or a fixed coupon_code)")
        return self


class Notices(_Section):
    # Customers are told about points that expire within this many days (once per lot).
    expiry_notice_days: Annotated[int, Field(ge=0, le=365)] = 14


class Programme(_Section):
    earning: Earning = Field(default_factory=Earning)
    redemption: Redemption = Field(default_factory=Redemption)
    tiers: Tiers = Field(default_factory=Tiers)
    campaigns: list[Campaign] = Field(default_factory=list, max_length=200)
    adjustments: Adjustments = Field(default_factory=Adjustments)
    win_back: WinBack = Field(default_factory=WinBack)
    notices: Notices = Field(default_factory=Notices)
    # Earning beyond spend (sign-up, first order, reviews, referrals, tier-up): domain/rules.py.
    rules: Rules = Field(default_factory=Rules)

    @model_validator(mode="after")
    def _unique_campaigns(self) -> Programme:
        ids = [c.id for c in self.campaigns]
        if len(set(ids)) != len(ids):
            raise ValueError("campaign ids must be unique")
        unknown = set(self.rules.tier_up.points) - {t.name for t in self.tiers.levels}
        if unknown:
            raise ValueError(f"rules.tier_up names tiers the programme does not have: {sorted(unknown)}")
        return self


DEFAULT_PROGRAMME = Programme()


@dataclass(frozen=True, slots=True)
class ProgrammeTimeline:
    """Every version of the programme with the moment it took effect, oldest first."""

    versions: list[tuple[int, datetime, Programme]]

    @property
    def current(self) -> Programme:
        return self.versions[-1][2]

    @property
    def current_version(self) -> int:
        return self.versions[-1][0]

    def in_force_at(self, moment: datetime) -> tuple[int, Programme]:
        """The version effective at a business time; changes are never retroactive."""
        chosen = self.versions[0]
        for entry in self.versions:
            if entry[1] <= moment:
                chosen = entry
        return chosen[0], chosen[2]
