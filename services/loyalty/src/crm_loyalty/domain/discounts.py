"""Order discounts held until their order proves them, and agents' adjustment periods. No I/O.

A member takes points off an order before it is paid, when the CRM has not seen the order yet, so
nothing at that moment proves the order is theirs. The redemption is *held* (the points are spent,
so they cannot be spent twice) until ``commerce.order.paid`` arrives: only then is it tied to the
order, and only if the order is the redeeming member's, in the redemption's currency, and the
discounts stay within the programme's share of the order's value. Everything else is *voided* and
the points come back into the lots they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class HeldDiscount:
    redemption_id: str
    currency: str | None
    money_value: Decimal


@dataclass(frozen=True, slots=True)
class Settlement:
    applied: list[str]               # redemption ids tied to the order
    voided: list[tuple[str, str]]    # (redemption id, why)
    points_value: Decimal            # what the applied discounts took off the order


def settle(held: list[HeldDiscount], *, currency: str, total_amount: Decimal, max_share: Decimal) -> Settlement:
    """Tie a member's held discounts (oldest first) to their paid order, up to ``max_share`` of its
    value; a discount in another currency, or one that would pass the cap, is voided whole."""
    cap = total_amount * max_share
    applied: list[str] = []
    voided: list[tuple[str, str]] = []
    value = Decimal(0)
    for discount in held:
        if discount.currency != currency:
            voided.append((discount.redemption_id, f"the order was paid in {currency}"))
        elif value + discount.money_value > cap:
            voided.append((discount.redemption_id, f"points may pay at most {max_share:%} of an order"))
        else:
            applied.append(discount.redemption_id)
            value += discount.money_value
    return Settlement(applied, voided, value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def period_start(moment: datetime, hours: int) -> datetime:
    """The start of the adjustment period holding ``moment`` (periods of ``hours`` from the epoch,
    so 24 gives UTC days)."""
    length = timedelta(hours=hours)
    return _EPOCH + ((moment - _EPOCH) // length) * length
