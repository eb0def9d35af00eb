"""Earning rules beyond spend: sign-up, first order, product reviews, referrals and tier-up bonuses.

The ``rules`` section of the programme (versioned with the rest: an event earns by the version in
force at its business time) and the pure decisions on it. Every rule is off by default; each has an
optional window ``[starts_at, ends_at)`` and its caps. What was granted is kept once per
(member, rule, subject) by the use case (``usecases/rules.py``), so the decisions here only say
what an event would earn. Also the blind index of the fraud guard: keyed HMAC-SHA256 digests of a
normalised e-mail, phone or payment token, so equal values can be compared and none read back.
No I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from crm_shared.events.catalogue import AwareDatetime
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Points = Annotated[int, Field(ge=0, le=100_000_000)]
TierName = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=r"^[a-z0-9_\-]+$")]
PeriodDays = Annotated[int, Field(ge=1, le=3650)]
Cap = Annotated[int, Field(ge=1, le=1_000_000)]

# The rule names as written in rule_grants.rule and the ledger's campaign (``rule:<name>``).
SIGNUP, FIRST_ORDER, REVIEW, TIER_UP = "signup", "first_order", "review", "tier_up"
REFERRER, REFEREE = "referral_referrer", "referral_referee"


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _window(self) -> _Rule:
        if self.starts_at is not None and self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def active(self, at: datetime) -> bool:
        return self.enabled and (self.starts_at is None or self.starts_at <= at) and \
            (self.ends_at is None or at < self.ends_at)


def _meets(minimum: Decimal | None, rule_currency: str | None, currency: str, amount: Decimal) -> bool:
    return minimum is None or (currency == rule_currency and amount >= minimum)


class SignupRule(_Rule):
    """Points on ``commerce.customer.registered``, once per member."""

    points: Points = 0


class FirstOrderRule(_Rule):
    """Points on the member's first paid order, once; with ``min_amount`` only if that first order
    reaches it (in ``currency``): a smaller first order earns none, and no later order is "first"."""

    points: Points = 0
    min_amount: Annotated[Decimal, Field(ge=0)] | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _currency(self) -> FirstOrderRule:
        if self.min_amount is not None and self.currency is None:
            raise ValueError("first_order.min_amount needs currency")
        return self

    def meets(self, currency: str, amount: Decimal) -> bool:
        return _meets(self.min_amount, self.currency, currency, amount)


class ReviewRule(_Rule):
    """Points for a product review (``commerce.interaction.recorded``, kind ``review``, with the
    product in ``attributes.sku``): once per product per member, at most ``max_per_period`` in any
    ``period_days`` (rolling), and only reviews whose ``attributes.text`` has ``min_length``
    characters or more when that is set."""

    points: Points = 0
    max_per_period: Cap | None = None
    period_days: PeriodDays = 30
    min_length: Annotated[int, Field(ge=1, le=10_000)] | None = None


class ReferralRule(_Rule):
    """A member named as ``referred_by`` at a registration earns ``referrer_points`` and the new
    member ``referee_points`` on the new member's first paid order (once; that order must reach
    ``min_order_amount`` in ``currency`` when set). The referrer earns for at most
    ``max_referrals_per_referrer_per_period`` referrals in any ``period_days`` (rolling)."""

    referrer_points: Points = 0
    referee_points: Points = 0
    min_order_amount: Annotated[Decimal, Field(ge=0)] | None = None
    currency: Currency | None = None
    max_referrals_per_referrer_per_period: Cap | None = None
    period_days: PeriodDays = 30

    @model_validator(mode="after")
    def _currency(self) -> ReferralRule:
        if self.min_order_amount is not None and self.currency is None:
            raise ValueError("referral.min_order_amount needs currency")
        return self

    def meets(self, currency: str, amount: Decimal) -> bool:
        return _meets(self.min_order_amount, self.currency, currency, amount)


class TierUpRule(_Rule):
    """Points when a member reaches a tier, by tier name: once per tier per member, ever."""

    points: dict[TierName, Points] = Field(default_factory=dict, max_length=20)

    def points_for(self, tier: str, at: datetime) -> int:
        return self.points.get(tier, 0) if self.active(at) else 0


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    signup: SignupRule = Field(default_factory=SignupRule)
    first_order: FirstOrderRule = Field(default_factory=FirstOrderRule)
    review: ReviewRule = Field(default_factory=ReviewRule)
    referral: ReferralRule = Field(default_factory=ReferralRule)
    tier_up: TierUpRule = Field(default_factory=TierUpRule)


# -- decisions -------------------------------------------------------------------------------------

def signup_points(rule: SignupRule, at: datetime) -> int:
    return rule.points if rule.active(at) else 0


def first_order_points(rule: FirstOrderRule, at: datetime, currency: str, amount: Decimal) -> int:
    return rule.points if rule.active(at) and rule.meets(currency, amount) else 0


def review_subject(attributes: dict[str, Any]) -> str | None:
    """The product a review is about (its sku), or None: a review of nothing named earns nothing."""
    sku = attributes.get("sku") or attributes.get("product_sku")
    if isinstance(sku, str) and 0 < len(sku.strip()) <= 100:
        return sku.strip()
    return None


def review_points(rule: ReviewRule, at: datetime, attributes: dict[str, Any], recent: list[datetime]) -> int:
    """What one review earns, given when the member's earlier review bonuses were granted."""
    if not rule.active(at) or not rule.points or review_subject(attributes) is None:
        return 0
    if rule.min_length is not None:
        text = attributes.get("text")
        if not isinstance(text, str) or len(text.strip()) < rule.min_length:
            return 0
    if rule.max_per_period is not None and within(recent, at, rule.period_days) >= rule.max_per_period:
        return 0
    return rule.points


def within(moments: list[datetime], at: datetime, period_days: int) -> int:
    """How many of ``moments`` fall in the rolling period of ``period_days`` ending at ``at``."""
    since = at - timedelta(days=period_days)
    return sum(1 for moment in moments if since < moment <= at)


Refusal = Literal["self-referral", "same-email", "same-phone", "same-payment", "referrer-unknown",
                  "referrer-erased"]


def referral_refusal(referee: str, referrer: str, referee_prints: set[tuple[str, bytes]],
                     referrer_prints: set[tuple[str, bytes]], *, referrer_known: bool = True,
                     referrer_erased: bool = False) -> Refusal | None:
    """Why a referral is fraud (or cannot be paid), or None: nobody refers themselves, under their
    own id or with the same e-mail, phone or payment means as the referrer's."""
    if referee == referrer:
        return "self-referral"
    shared = {kind for kind, digest in referee_prints if (kind, digest) in referrer_prints}
    for kind in ("email", "phone", "payment"):
        if kind in shared:
            return f"same-{kind}"  # type: ignore[return-value]
    if not referrer_known:
        return "referrer-unknown"
    if referrer_erased:
        return "referrer-erased"
    return None


@dataclass(frozen=True, slots=True)
class ReferralAward:
    referee_points: int
    referrer_points: int
    status: Literal["paid", "refused"]
    reason: str | None = None


def referral_award(rule: ReferralRule, at: datetime, currency: str, amount: Decimal,
                   referrer_recent: list[datetime]) -> ReferralAward:
    """What a clean referral pays on the referee's first paid order (``at``), given when the
    referrer's earlier referral bonuses were granted. The referee is paid even when the referrer's
    cap is reached (the reason says so)."""
    if not rule.active(at):
        return ReferralAward(0, 0, "refused", "rule-not-active")
    if not rule.meets(currency, amount):
        return ReferralAward(0, 0, "refused", "first-order-below-minimum")
    cap = rule.max_referrals_per_referrer_per_period
    if cap is not None and within(referrer_recent, at, rule.period_days) >= cap:
        return ReferralAward(rule.referee_points, 0, "paid", "referrer-cap-reached")
    return ReferralAward(rule.referee_points, rule.referrer_points, "paid")


# -- the blind index -------------------------------------------------------------------------------

FingerprintKind = Literal["email", "phone", "payment"]


def normalise(kind: FingerprintKind, value: str | None) -> str | None:
    """E-mail lowercased and trimmed; phone digits only; a payment token as given (trimmed)."""
    if value is None:
        return None
    if kind == "email":
        value = value.strip().lower()
    elif kind == "phone":
        value = "".join(c for c in value if c.isdigit())
    else:
        value = value.strip()
    return value or None


class Fingerprints:
    """Keyed HMAC-SHA256 digests; the key (``FINGERPRINT_KEY``) never leaves the service."""

    def __init__(self, key: bytes) -> None:
        self._key = hmac.new(key, b"crm-loyalty fingerprint v1", hashlib.sha256).digest()

    def digest(self, kind: FingerprintKind, value: str | None) -> bytes | None:
        normalised = normalise(kind, value)
        if normalised is None:
            return None
        return hmac.new(self._key, f"{kind}\x1f{normalised}".encode(), hashlib.sha256).digest()

    def of(self, **values: str | None) -> tuple[tuple[str, bytes], ...]:
        """``of(email=..., phone=...)``: the digests of the values given, by kind."""
        found = ((kind, self.digest(kind, value)) for kind, value in values.items())  # type: ignore[arg-type]
        return tuple((kind, digest) for kind, digest in found if digest is not None)
