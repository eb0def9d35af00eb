"""SQL for following profile merges (kept apart from ``repository.py``). Repositories never commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_MOVE = {
    "tickets": text("UPDATE tickets SET customer_id = :to, updated_at = now() WHERE customer_id = :from "
                    "RETURNING ticket_id"),
    "csat": text("UPDATE csat SET customer_id = :to WHERE customer_id = :from RETURNING ticket_id"),
}
_MOVE_BACK = {
    "tickets": text("""UPDATE tickets SET customer_id = :to, updated_at = now()
                       WHERE customer_id = :from AND ticket_id = ANY(CAST(:ids AS text[]))"""),
    "csat": text("""UPDATE csat SET customer_id = :to
                    WHERE customer_id = :from AND ticket_id = ANY(CAST(:ids AS text[]))"""),
}


async def move_tickets(tx: AsyncConnection, *, duplicate: str, survivor: str) -> dict[str, list[Any]]:
    """Every ticket and rating of ``duplicate`` now belongs to ``survivor``; their ids."""
    return {name: sorted(row[0] for row in await tx.execute(statement, {"from": duplicate, "to": survivor}))
            for name, statement in _MOVE.items()}


async def move_tickets_back(tx: AsyncConnection, moved: dict[str, list[Any]], *, survivor: str,
                            duplicate: str) -> None:
    for name, statement in _MOVE_BACK.items():
        await tx.execute(statement, {"from": survivor, "to": duplicate, "ids": moved.get(name, [])})
