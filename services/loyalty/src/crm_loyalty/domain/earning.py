"""How many points an order earns, and how many a refund takes back. Pure arithmetic.

Points are integers; money is Decimal. Every rounding is down (floor), in the shop's favour,
and each order's points are kept per line so a refund of one line takes back exactly that line's
share, and a full refund takes back exactly what was earned (cumulative targets, never a sum of
rounded deltas).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from crm_loyalty.domain.programme import Programme, Tier

WHOLE_ORDER = "*"  # the one line of an order sent without items


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    category: str | None
    quantity: int
    value: Decimal  # quantity × unit price


@dataclass(frozen=True, slots=True)
class Earned:
    points: int
    money_paid: Decimal                     # the part of the order paid in money
    line_points: tuple[int, ...]            # per line, summing to ``points``
    campaigns: tuple[str, ...]              # campaigns that added points


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def apportion(total: int, weights: list[Decimal]) -> list[int]:
    """Split ``total`` integer points over weights, largest remainder first; sums to ``total``."""
    if len(weights) == 1:
        return [max(total, 0)]
    weight_sum = sum(weights, Decimal(0))
    if total <= 0 or weight_sum <= 0:
        return [0] * len(weights)
    # share_i = floor(total × w_i / Σw); the remainders total × w_i mod Σw decide the leftovers.
    scaled = [total * w for w in weights]
    shares = [int(x // weight_sum) for x in scaled]
    leftover = total - sum(shares)
    if leftover:
        by_remainder = sorted(range(len(weights)), key=lambda i: (scaled[i] % weight_sum, -i), reverse=True)
        for i in by_remainder[:leftover]:
            shares[i] += 1
    return shares


def earn(programme: Programme, *, currency: str, total_amount: Decimal, lines: list[Line],
         points_value: Decimal, tier: Tier, paid_at: datetime) -> Earned:
    """Points for a paid order: money paid × base rate × (tier multiplier + category and campaign
    bonuses), floored, capped per order. The part paid with points earns nothing."""
    money_paid = max(Decimal(0), total_amount - points_value)
    rate = programme.earning.points_per_unit.get(currency)
    if not lines:
        lines = [Line(WHOLE_ORDER, None, 1, total_amount)]
    if rate is None or money_paid == 0 or total_amount == 0:
        return Earned(0, money_paid, tuple(0 for _ in lines), ())
    items_value = sum((line.value for line in lines), Decimal(0))
    # The money paid is spread over the lines by value: shipping and discounts move with it.
    money_share = money_paid / items_value if items_value > 0 else Decimal(0)
    line_weights: list[Decimal] = []
    total = Decimal(0)
    campaign_points: dict[str, Decimal] = {}
    for line in lines:
        base = line.value * money_share * rate
        regular = base * (tier.multiplier + programme.earning.category_bonus.get(line.category or "", Decimal(0)))
        weight = regular
        for campaign in programme.campaigns:
            if campaign.applies(paid_at, line.category):
                extra = base * campaign.extra_multiplier
                campaign_points[campaign.id] = campaign_points.get(campaign.id, Decimal(0)) + extra
                weight += extra
        total += regular
        line_weights.append(weight)
    for campaign in programme.campaigns:
        if campaign.id in campaign_points:
            cap = campaign.max_points_per_order
            total += campaign_points[campaign.id] if cap is None else min(campaign_points[campaign.id], Decimal(cap))
    points = _floor(total)
    if programme.earning.max_points_per_order is not None:
        points = min(points, programme.earning.max_points_per_order)
    # Every point, campaign points included, belongs to the line it was earned on.
    return Earned(points, money_paid, tuple(apportion(points, line_weights)), tuple(sorted(campaign_points)))


def share_target(points: int, part: Decimal, whole: Decimal) -> int:
    """Points owed back when ``part`` of ``whole`` has been returned so far (floored, capped)."""
    if whole <= 0 or part >= whole:
        return points
    if part <= 0:
        return 0
    return min(points, _floor(points * part / whole))


def line_target(points: int, refunded_quantity: int, quantity: int) -> int:
    """A line's points owed back once ``refunded_quantity`` of its ``quantity`` came back."""
    if refunded_quantity >= quantity:
        return points
    return points * max(0, refunded_quantity) // quantity


def money_value(points: int, points_per_unit: int) -> Decimal:
    """The cash value of points off an order (100 points at 100/unit = 1.00), to the cent, down."""
    return (Decimal(points) / Decimal(points_per_unit)).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)


def months_later(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` later, clamped to the month's last day (31 Jan + 1 = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    days = [31, 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28, 31, 30, 31, 30,
            31, 31, 30, 31, 30, 31][month - 1]
    return moment.replace(year=year, month=month, day=min(moment.day, days))


__all__ = ["WHOLE_ORDER", "Earned", "Line", "apportion", "earn", "line_target", "money_value",
           "months_later", "share_target"]
