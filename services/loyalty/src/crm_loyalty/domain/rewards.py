"""The reward catalogue's rules: when a reward can be redeemed, by whom, how often, what it costs,
and how its fulfilment may move. Pure: no I/O (the use cases in ``usecases/rewards.py`` apply them).

A reward costs ``points_price`` points per unit, optionally plus ``cash_price`` (paid to the shop at
fulfilment; the CRM only records what is due). Gifts are shipped (``requested`` → ``shipped`` →
``delivered``, or ``cancelled`` on the way with the points and the stock back); digital kinds
(cash-off voucher, coupon, free shipping) are a coupon issued at once, so they start ``delivered``
and are never cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

KINDS = ("gift", "cash_voucher", "coupon", "free_shipping")
DIGITAL_KINDS = frozenset({"cash_voucher", "coupon", "free_shipping"})
FULFILMENT_STATUSES = ("requested", "shipped", "delivered", "cancelled")
FINAL_STATUSES = frozenset({"delivered", "cancelled"})
NEXT_STATUSES: dict[str, frozenset[str]] = {
    "requested": frozenset({"shipped", "cancelled"}),
    "shipped": frozenset({"delivered", "cancelled"}),
    "delivered": frozenset(),
    "cancelled": frozenset(),
}
MAX_QUANTITY = 10


@dataclass(frozen=True, slots=True)
class Reward:
    reward_id: str
    name: str
    kind: str
    points_price: int
    cash_price: Decimal | None = None
    cash_currency: str | None = None
    stock: int | None = None
    redeemed_count: int = 0
    available_from: datetime | None = None
    available_until: datetime | None = None
    eligible_tiers: tuple[str, ...] = ()
    eligible_segments: tuple[str, ...] = ()
    per_customer_limit: int | None = None
    limit_period_days: int | None = None
    active: bool = True


class InvalidTransition(ValueError):
    """A fulfilment status that cannot follow the current one."""

    def __init__(self, current: str, wanted: str, why: str) -> None:
        super().__init__(why)
        self.current, self.wanted = current, wanted


def unavailable_reason(reward: Reward, at: datetime) -> str | None:
    """Why the reward cannot be redeemed at ``at`` by anyone, or None."""
    if not reward.active:
        return "the reward is not active"
    if reward.available_from is not None and at < reward.available_from:
        return f"the reward is available from {reward.available_from.isoformat()}"
    if reward.available_until is not None and at >= reward.available_until:
        return f"the reward was available until {reward.available_until.isoformat()}"
    return None


def ineligible_reason(reward: Reward, tier: str, segments: set[str] | frozenset[str]) -> str | None:
    """Why a member of ``tier`` in ``segments`` may not redeem it, or None. An empty list admits all;
    a member needs to be in at least one of the listed segments."""
    if reward.eligible_tiers and tier not in reward.eligible_tiers:
        return f"the reward is for the {', '.join(reward.eligible_tiers)} tier(s)"
    if reward.eligible_segments and not segments.intersection(reward.eligible_segments):
        return "the reward is for members of particular segments"
    return None


def limit_counted_since(reward: Reward, at: datetime) -> datetime | None:
    """From when the per-customer limit counts (None: over the member's whole history)."""
    if reward.limit_period_days is None:
        return None
    return at - timedelta(days=reward.limit_period_days)


def limit_left(reward: Reward, units_redeemed: int) -> int | None:
    """Units the member may still redeem in the period (None: no limit)."""
    if reward.per_customer_limit is None:
        return None
    return max(reward.per_customer_limit - units_redeemed, 0)


def refusal(reward: Reward, *, at: datetime, tier: str, segments: set[str] | frozenset[str],
            units_redeemed: int, quantity: int = 1) -> tuple[str, str] | None:
    """(problem code, why) that refuses this member ``quantity`` units now, or None. The stock and
    the points are checked where they are taken (they race with other members)."""
    why = unavailable_reason(reward, at)
    if why is not None:
        return "reward-unavailable", why
    why = ineligible_reason(reward, tier, segments)
    if why is not None:
        return "not-eligible", why
    left = limit_left(reward, units_redeemed)
    if left is not None and quantity > left:
        period = f"every {reward.limit_period_days} days" if reward.limit_period_days else "in all"
        return "limit-reached", (f"at most {reward.per_customer_limit} of this reward per member {period}; "
                                 f"{left} left")
    return None


def points_for(reward: Reward, quantity: int) -> int:
    return reward.points_price * quantity


def cash_due(reward: Reward, quantity: int) -> Decimal | None:
    return None if reward.cash_price is None else reward.cash_price * quantity


def first_status(kind: str) -> str:
    """Digital kinds are issued (as a coupon) at once; gifts wait to be shipped."""
    return "delivered" if kind in DIGITAL_KINDS else "requested"


def transition(kind: str, current: str, wanted: str) -> bool:
    """Whether ``wanted`` changes anything (the same status again is a no-op: False); raises
    :class:`InvalidTransition` when it may not follow ``current``."""
    if wanted == current:
        return False
    if wanted == "cancelled" and kind in DIGITAL_KINDS:
        raise InvalidTransition(current, wanted, "a digital reward is issued at once and cannot be cancelled")
    if wanted not in NEXT_STATUSES.get(current, frozenset()):
        final = " (final)" if current in FINAL_STATUSES else ""
        raise InvalidTransition(current, wanted, f"a redemption {current}{final} cannot become {wanted}")
    return True


def spec_problem(spec: dict) -> str | None:
    """What is wrong with a reward's editable fields taken together, or None (each field's own
    bounds are the request schema's)."""
    if spec["kind"] not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}"
    if spec["kind"] in DIGITAL_KINDS and not spec.get("coupon_pool_id"):
        return f"a {spec['kind']} reward needs the coupon_pool_id its coupons are issued from"
    if (spec.get("cash_price") is None) != (spec.get("cash_currency") is None):
        return "cash_price and cash_currency go together"
    if spec.get("limit_period_days") is not None and spec.get("per_customer_limit") is None:
        return "limit_period_days needs per_customer_limit"
    start, end = spec.get("available_from"), spec.get("available_until")
    if start is not None and end is not None and start >= end:
        return "available_from must be before available_until"
    return None


def reward_of(row: dict) -> Reward:
    """The rules' view of a ``rewards`` row."""
    return Reward(reward_id=row["reward_id"], name=row["name"], kind=row["kind"], points_price=row["points_price"],
                  cash_price=row["cash_price"], cash_currency=row["cash_currency"], stock=row["stock"],
                  redeemed_count=row["redeemed_count"], available_from=row["available_from"],
                  available_until=row["available_until"], eligible_tiers=tuple(row["eligible_tiers"] or ()),
                  eligible_segments=tuple(row["eligible_segments"] or ()),
                  per_customer_limit=row["per_customer_limit"], limit_period_days=row["limit_period_days"],
                  active=row["active"])
