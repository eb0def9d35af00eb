"""Erasure in the tickets service: what people wrote goes, the figures stay.

For the customer and every duplicate merged into it (``crm.profile.customer.erased`` names them):
subjects, descriptions, comments (the customer's and the agents'), CSAT comments, attachments
(their metadata; the files live in the shop's object store, which the shop erases) and the
free text quoted in the tickets' history (subject corrections, attachment file names) are erased;
ids, kinds, categories, priorities, root causes, statuses, SLA times and scores stay, so the
reports do not change.

The ids are kept in ``erased_customers``: nothing new about them is recorded over HTTP (a ticket,
comment, attachment, rating or subject for an erased customer is a 409), and a churn warning
about one arriving later opens no follow-up task.
"""

from __future__ import annotations

from crm_shared.bus import Inbound
from crm_shared.erasure import ERASED_TEXT, customer_erased, erased_among, record_erasures
from crm_shared.events.catalogue import ProfileCustomerErasedData
from crm_shared.idempotency import forget_answers
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

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


async def erase_customers(tx: AsyncConnection, events: list[Inbound[ProfileCustomerErasedData]]) -> None:
    """Apply erasures (idempotent: a replayed one changes nothing)."""
    ids = await record_erasures(tx, events)
    tickets = [row.ticket_id for row in await tx.execute(_TICKETS_OF, {"ids": ids})]
    for statement in _ERASE:
        await tx.execute(statement, {"ids": ids, "tickets": tickets, "erased": ERASED_TEXT})
    # Stored answers of creations and comments quote what was written.
    await forget_answers(tx, field="customer_id", values=ids)
    await forget_answers(tx, field="ticket_id", values=tickets)



async def refuse_if_erased(db: AsyncConnection, customer_id: str) -> None:
    """Writing about an erased customer would store personal data again: 409."""
    if await erased_among(db, [customer_id]):
        raise customer_erased()
