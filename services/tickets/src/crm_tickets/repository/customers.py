"""What the tickets service keeps about customers from other services' events: their tier and
churn level, erasures (free text goes, figures stay) and merges (tickets follow the survivor)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_shared.erasure import ERASED_TEXT, record_erased
from crm_shared.idempotency import forget_answers
from crm_shared.merges import MergeRecord, claim_merge, close_merge, lock_merge_in_force, set_moved
from sqlalchemy import text

from crm_tickets.repository.base import Bound

_COPY = {column: text(f"""
    INSERT INTO customer_levels (customer_id, {column})
    SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:values AS text[]))
    ON CONFLICT (customer_id) DO UPDATE SET {column} = excluded.{column}
""") for column in ("tier", "churn_level")}
_CLAIM_FOLLOW_UP = text("""
    UPDATE customer_levels SET follow_up_at = :at
    WHERE customer_id = :customer_id AND tier = ANY(CAST(:key_tiers AS text[]))
      AND (follow_up_at IS NULL
           OR follow_up_at <= CAST(:at AS timestamptz) - make_interval(days => CAST(:period_days AS integer)))
    RETURNING customer_id
""")
_TICKETS_OF = text("SELECT ticket_id FROM tickets WHERE customer_id = ANY(CAST(:ids AS text[]))")
_ERASE = [
    text("""UPDATE tickets SET subject = :erased, description = '', updated_at = now()
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND (subject <> :erased OR description <> '')"""),
    text("""UPDATE ticket_comments SET body = :erased
            WHERE ticket_id = ANY(CAST(:tickets AS text[])) AND body <> :erased"""),
    text("UPDATE csat SET comment = NULL WHERE customer_id = ANY(CAST(:ids AS text[])) AND comment IS NOT NULL"),
    text("DELETE FROM ticket_attachments WHERE ticket_id = ANY(CAST(:tickets AS text[]))"),
    text("""UPDATE ticket_history SET changes = changes || jsonb_build_object('subject', jsonb_build_array(
                CAST(:erased AS text), CAST(:erased AS text)))
            WHERE ticket_id = ANY(CAST(:tickets AS text[])) AND changes ? 'subject'"""),
    text("""UPDATE ticket_history SET changes = changes || jsonb_build_object('filename', CAST(:erased AS text))
            WHERE ticket_id = ANY(CAST(:tickets AS text[])) AND changes ? 'filename'"""),
]
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


class CustomerRows(Bound):
    # -- tier and churn level -----------------------------------------------------------------------

    async def copy_levels(self, column: str, latest: dict[str, str]) -> None:
        """``column`` (tier or churn_level) of each customer in ``latest``, in one statement."""
        await self.connection.execute(_COPY[column], {"ids": list(latest), "values": list(latest.values())})

    async def claim_follow_up(self, customer_id: str, *, at: datetime, key_tiers: list[str],
                              period_days: int) -> bool:
        """Take this period's follow-up of a key customer; False if not key or already taken."""
        return (await self.connection.execute(_CLAIM_FOLLOW_UP, {
            "customer_id": customer_id, "at": at, "key_tiers": key_tiers,
            "period_days": period_days})).first() is not None

    # -- erasure ------------------------------------------------------------------------------------

    async def record_erasures(self, erased_at: dict[str, datetime]) -> None:
        """The tombstones (``erased_customers``) of these ids; idempotent, the first erasure stays."""
        await record_erased(self.connection, erased_at)

    async def erase_texts(self, customer_ids: list[str]) -> None:
        """What people wrote about these customers goes (also in stored answers); ids and figures stay."""
        tickets = [row.ticket_id for row in await self.connection.execute(_TICKETS_OF, {"ids": customer_ids})]
        for statement in _ERASE:
            await self.connection.execute(statement, {"ids": customer_ids, "tickets": tickets,
                                                      "erased": ERASED_TEXT})
        await forget_answers(self.connection, field="customer_id", values=customer_ids)
        await forget_answers(self.connection, field="ticket_id", values=tickets)

    # -- merges -------------------------------------------------------------------------------------

    async def claim_merge(self, *, survivor: str, duplicate: str, at: datetime, event_id: str) -> int | None:
        return await claim_merge(self.connection, survivor=survivor, duplicate=duplicate, at=at, event_id=event_id)

    async def move_tickets(self, *, duplicate: str, survivor: str) -> dict[str, list[Any]]:
        """Every ticket and rating of ``duplicate`` now belongs to ``survivor``; their ids."""
        return {name: sorted(row[0] for row in await self.connection.execute(
            statement, {"from": duplicate, "to": survivor})) for name, statement in _MOVE.items()}

    async def set_moved(self, merge_id: int, moved: dict[str, Any]) -> None:
        await set_moved(self.connection, merge_id, moved)

    async def lock_merge_in_force(self, *, survivor: str, duplicate: str) -> MergeRecord | None:
        return await lock_merge_in_force(self.connection, survivor=survivor, duplicate=duplicate)

    async def move_tickets_back(self, moved: dict[str, list[Any]], *, survivor: str, duplicate: str) -> None:
        for name, statement in _MOVE_BACK.items():
            await self.connection.execute(statement, {"from": survivor, "to": duplicate, "ids": moved.get(name, [])})

    async def close_merge(self, merge_id: int, at: datetime) -> None:
        await close_merge(self.connection, merge_id, at)
