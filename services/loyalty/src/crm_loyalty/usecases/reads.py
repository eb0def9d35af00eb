"""What a member (or an agent) reads: the account, what expires when, the ledger, the balance as
of a moment, the redemptions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from crm_shared.errors import NotFoundError

from crm_loyalty.domain.earning import money_value
from crm_loyalty.usecases.commands import programme_for_commands
from crm_loyalty.usecases.common import ProgrammeStore, Uow, now


async def account(uow: Uow, store: ProgrammeStore, customer_id: str) -> dict[str, Any]:
    """Tier and balances, the points expiring in the next 30 days, the next expiry and what the
    available points are worth per currency."""
    row = await uow.repo.account_view(customer_id, now() + timedelta(days=30))
    if row is None:
        raise NotFoundError.of("loyalty account", customer_id)
    first = await uow.repo.expiries(customer_id, 1)
    programme = await programme_for_commands(uow, store)
    return {**row, "expiring_30d": int(row["expiring_30d"]), "next_expiry": first[0] if first else None,
            "cash_value": {currency: str(money_value(row["available"], rate))
                           for currency, rate in programme.redemption.points_per_unit.items()}}


async def expiries(uow: Uow, customer_id: str, limit: int) -> list[tuple[datetime, int]]:
    return await uow.repo.expiries(customer_id, limit)


async def ledger_page(uow: Uow, customer_id: str, *, before: int, kind: str | None, limit: int
                      ) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` entries older than ``before``, newest first, and whether more follow."""
    rows = await uow.repo.ledger_page(customer_id, before=before, kind=kind, limit=limit + 1)
    return rows[:limit], len(rows) > limit


async def balance_as_of(uow: Uow, customer_id: str, as_of: datetime) -> dict[str, Any]:
    row = await uow.repo.balance_as_of(customer_id, as_of)
    if not row["known"]:
        raise NotFoundError.of("loyalty account", customer_id)
    return row


async def redemptions(uow: Uow, customer_id: str, limit: int) -> list[dict[str, Any]]:
    return await uow.repo.redemptions_of(customer_id, limit)
