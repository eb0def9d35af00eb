"""Reports: the liability the programme carries, for finance and for the supervisor's screen."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from crm_loyalty.domain.earning import money_value
from crm_loyalty.usecases.commands import programme_for_commands
from crm_loyalty.usecases.common import ProgrammeStore, Uow, now


async def liability(uow: Uow, store: ProgrammeStore) -> dict[str, Any]:
    """What the shop owes its members as of now: the points outstanding (available, pending, debt
    owed back) and what they are worth off orders per currency at the programme's redemption rate."""
    at = now()
    points = await uow.repo.points_liability(at + timedelta(days=30), at + timedelta(days=90))
    programme = await programme_for_commands(uow, store)
    rates = programme.redemption.points_per_unit
    return {
        "as_of": at,
        "points": points,
        "points_value": {currency: {"available": money_value(points["available"], rate),
                                    "pending": money_value(points["pending"], rate)}
                         for currency, rate in rates.items()},
    }


__all__ = ["liability"]
