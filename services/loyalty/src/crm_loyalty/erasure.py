"""Erasure in the loyalty service: the personal data goes, the numbers stay.

What may be personal here: the birthday, and free text people wrote: the reason an agent (or the
customer redeeming) gave for a ledger movement and a redemption's note. These are erased for the
customer and every duplicate merged into it (``crm.profile.customer.erased`` names them). Points,
lots, orders and every ledger amount stay, so the ledger still equals the balances; reasons the
service wrote itself ("order o-1 paid") say nothing about the person and stay too.

The ids are kept in ``erased_customers``: an account opened later for one of them (a late order
still earns, anonymously) starts erased, a birthday sent later is not stored, and no birthday
greeting, win-back offer or manual change (redemption, adjustment) reaches it.
"""

from __future__ import annotations

from datetime import datetime

from crm_shared.bus import Inbound
from crm_shared.erasure import ERASED_TEXT, customer_erased, record_erasures
from crm_shared.events.catalogue import ProfileCustomerErasedData
from crm_shared.idempotency import forget_answers
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_ERASE = [
    text("""UPDATE accounts a SET birthday = NULL, erased_at = COALESCE(a.erased_at, e.erased_at),
                                 updated_at = now()
            FROM erased_customers e
            WHERE e.customer_id = a.customer_id AND e.customer_id = ANY(CAST(:ids AS text[]))"""),
    # Written by a person (an agent's adjustment, a redemption): the actor is set on those only.
    text("""UPDATE ledger SET reason = :erased
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND actor IS NOT NULL AND reason <> :erased"""),
    text("""UPDATE redemptions SET reason = NULL
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND reason IS NOT NULL"""),
]


async def erase_members(tx: AsyncConnection, events: list[Inbound[ProfileCustomerErasedData]]) -> None:
    """Apply erasures (idempotent: a replayed one changes nothing)."""
    ids = await record_erasures(tx, events)
    for statement in _ERASE:
        await tx.execute(statement, {"ids": ids, "erased": ERASED_TEXT})
    # Stored answers of adjustments quote their reason.
    await forget_answers(tx, field="customer_id", values=ids)


def refuse_if_erased(erased_at: datetime | None) -> None:
    """A manual change of an erased membership would record someone's words about them again."""
    if erased_at is not None:
        raise customer_erased()
