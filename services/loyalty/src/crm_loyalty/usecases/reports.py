"""Reports: the liability the programme carries, for finance and for the supervisor's screen."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from crm_loyalty.domain.earning import money_value
from crm_loyalty.usecases.commands import programme_for_commands
from crm_loyalty.usecases.common import ProgrammeStore, Uow, now


async def liability(uow: Uow, store: ProgrammeStore) -> dict[str, Any]:
    """What the shop owes its members as of now: the points outstanding (available, pending, debt
    owed back) and what they are worth off orders per currency at the programme's redemption rate;
    the rewards redeemed but not yet delivered; the coupons still usable, with the face value of the
    fixed-amount ones (a percent or free-shipping coupon's value depends on the cart: counted only)."""
    at = now()
    points = await uow.repo.points_liability(at + timedelta(days=30), at + timedelta(days=90))
    programme = await programme_for_commands(uow, store)
    rates = programme.redemption.points_per_unit
    owed, cash_due = await uow.repo.rewards_owed()
    coupons = await uow.repo.coupons_outstanding(at)
    face_value: dict[str, Decimal] = {}
    for row in coupons:
        if row["discount_kind"] == "amount":
            face_value[row["currency"]] = face_value.get(row["currency"], Decimal(0)) + row["face_value"]
    return {
        "as_of": at,
        "points": points,
        "points_value": {currency: {"available": money_value(points["available"], rate),
                                    "pending": money_value(points["pending"], rate)}
                         for currency, rate in rates.items()},
        "rewards_owed": {"by_status": {row["status"]: {k: int(row[k]) for k in ("redemptions", "units", "points")}
                                       for row in owed},
                         "cash_due": cash_due},
        "coupons": {"outstanding": sum(int(row["coupons"]) for row in coupons),
                    "face_value": face_value,
                    "by_kind": [{**row, "coupons": int(row["coupons"]), "generic": int(row["generic"]),
                                 "uses_left": int(row["uses_left"]), "unbounded_pools": int(row["unbounded_pools"])}
                                for row in coupons]},
    }


__all__ = ["liability"]
