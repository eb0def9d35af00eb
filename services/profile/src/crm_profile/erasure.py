"""Erasure: a customer's personal data goes, here and (through one event) in every other service.

A merge says two profiles are one person, and the duplicate's data may still sit under its own id
in services that keep it there, so a survivor is erased together with every profile merged into
it (directly or through another duplicate): one ``crm.profile.customer.erased`` names them all,
keyed by the survivor like the merges before it, so every consumer applies the merges first. A
duplicate is never erased on its own (the data it had now lives in its survivor): the route
answers 409 with the survivor to erase.

Erased customers stay marked (``erased_at``): events about them that arrive later are still
applied, for the numbers (orders, spend, activity counts, points on the timeline), but without
what may be personal: identity and consents from the shop, interaction attributes, the free-text
reasons of points movements. Functions take the caller's transaction and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_shared.bus import Inbound
from crm_shared.erasure import customer_erased
from crm_shared.idempotency import forget_answers
from crm_shared.problems import PROBLEM_BASE, NotFound, Problem
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

MAX_MERGED = 1000  # ProfileCustomerErasedData.merged_customer_ids

# The profile a (possibly merged) id ends in, following merged_into upwards.
_SURVIVOR_OF = text("""
    WITH RECURSIVE up(customer_id, merged_into, depth) AS (
        SELECT customer_id, merged_into, 0 FROM customers WHERE customer_id = :customer_id
        UNION ALL
        SELECT c.customer_id, c.merged_into, up.depth + 1
        FROM up JOIN customers c ON c.customer_id = up.merged_into WHERE up.depth < 100
    )
    SELECT customer_id FROM up WHERE merged_into IS NULL
""")
# The survivor and every profile merged into it, directly or through another duplicate (the merge
# journal is indexed by survivor; merged_into says whether the merge still stands), locked.
_GROUP = text("""
    WITH RECURSIVE grp(customer_id) AS (
        SELECT CAST(:survivor AS text)
        UNION
        SELECT c.customer_id FROM grp
        JOIN profile_merges m ON m.survivor_id = grp.customer_id
        JOIN customers c ON c.customer_id = m.merged_id AND c.merged_into = grp.customer_id
    )
    SELECT c.customer_id, c.erased_at, c.merged_into FROM customers c JOIN grp USING (customer_id)
    ORDER BY c.customer_id FOR UPDATE OF c
""")

# PII and free text go; ids, order dates, amounts, categories and the kinds and times of timeline
# entries stay, so the shop's statistics do not change. Interaction attributes may hold free text
# (search terms, chat snippets); a points movement's reason may be an agent's words.
_ERASE = [
    text("""UPDATE customers SET email_enc = NULL, email_bidx = NULL, phone_enc = NULL, phone_bidx = NULL,
                                 name_enc = NULL, address_enc = NULL, birthday = NULL, gender = NULL, city = NULL,
                                 tags = '{}', consent_email = false, consent_sms = false,
                                 consent_email_at = :at, consent_sms_at = :at,
                                 consent_email_source = 'erasure', consent_sms_source = 'erasure',
                                 erased_at = COALESCE(erased_at, :at), updated_at = now()
            WHERE customer_id = ANY(CAST(:ids AS text[]))"""),
    text("DELETE FROM customer_name_index WHERE customer_id = ANY(CAST(:ids AS text[]))"),
    text("DELETE FROM customer_external_ids WHERE customer_id = ANY(CAST(:ids AS text[]))"),
    text("DELETE FROM customer_notes WHERE customer_id = ANY(CAST(:ids AS text[]))"),
    text("""UPDATE timeline SET details = '{}'
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND kind LIKE 'interaction.%' AND details <> '{}'"""),
    text("""UPDATE timeline SET details = details - 'reason'
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND kind LIKE 'loyalty.points.%' AND details ? 'reason'"""),
    # A supervisor's words about why two profiles are one person (often the shared contact data).
    text("""UPDATE profile_merges SET reason = '(erased)'
            WHERE survivor_id = ANY(CAST(:ids AS text[])) OR merged_id = ANY(CAST(:ids AS text[]))"""),
]


@dataclass(frozen=True, slots=True)
class ErasureGroup:
    survivor: str
    merged: list[str]          # the duplicates merged into it
    newly_erased: bool         # False when the survivor was erased before (nothing to announce)
    erased_at: datetime | None  # of the earlier erasure


async def lock_erasure_group(tx: AsyncConnection, customer_id: str) -> ErasureGroup:
    """The profiles one erasure of ``customer_id`` covers, locked: 404 for an unknown id, 409 for
    a duplicate (naming the survivor to erase instead)."""
    survivor = (await tx.execute(_SURVIVOR_OF, {"customer_id": customer_id})).scalar()
    if survivor is None:
        exists = (await tx.execute(text("SELECT 1 FROM customers WHERE customer_id = :c"),
                                   {"c": customer_id})).first()
        if exists is None:
            raise NotFound("customer", customer_id)
        raise Problem(409, "Conflict", f"customer {customer_id!r} is in a merge cycle; resolve it first")
    if survivor != customer_id:
        raise Problem(409, "Conflict",
                      f"customer {customer_id!r} was merged into {survivor!r}, which holds its data now: erase "
                      f"{survivor!r} (that erases the profiles merged into it too), or unmerge first",
                      type_=PROBLEM_BASE + "merged-profile", survivor_id=survivor)
    rows = (await tx.execute(_GROUP, {"survivor": survivor})).all()
    if len(rows) > MAX_MERGED + 1:  # the event's bound: a longer list would be dead-lettered downstream
        raise Problem(422, "Unprocessable Content", f"more than {MAX_MERGED} profiles were merged into "
                      f"{survivor!r}; unmerge some first")
    first = next(row for row in rows if row.customer_id == survivor)
    if first.merged_into is not None:  # merged meanwhile, before the lock
        raise Problem(409, "Conflict", f"customer {customer_id!r} was just merged; retry",
                      type_=PROBLEM_BASE + "merged-profile", survivor_id=first.merged_into)
    return ErasureGroup(survivor=survivor, merged=sorted(r.customer_id for r in rows if r.customer_id != survivor),
                        newly_erased=first.erased_at is None, erased_at=first.erased_at)


async def erase_profiles(tx: AsyncConnection, customer_ids: list[str], at: datetime) -> None:
    """Remove the personal data of these profiles and mark them erased."""
    for statement in _ERASE:
        await tx.execute(statement, {"ids": customer_ids, "at": at})
    # Stored answers of earlier commands (notes, merges) may quote what was erased.
    await forget_answers(tx, field="customer_id", values=customer_ids)


_ERASED_AMONG = text("""
    SELECT customer_id FROM customers WHERE customer_id = ANY(CAST(:ids AS text[])) AND erased_at IS NOT NULL
""")


async def erased_among(tx: AsyncConnection, customer_ids: list[str]) -> set[str]:
    return {row.customer_id for row in await tx.execute(_ERASED_AMONG, {"ids": customer_ids})}


async def refuse_if_erased(db: AsyncConnection, customer_id: str) -> None:
    """An agent's edit or note about an erased customer would store personal data again: 409."""
    if await erased_among(db, [customer_id]):
        raise customer_erased()


# What of a late event's data may be personal, per event type: replaced before the handler runs.
_IDENTITY = {"email": None, "phone": None, "name": None, "birthday": None, "gender": None, "city": None,
             "consents": None}
_SCRUB = {
    "commerce.customer.registered": _IDENTITY,
    "commerce.customer.updated": _IDENTITY,
    "commerce.interaction.recorded": {"attributes": {}},
    **{f"crm.loyalty.points.{verb}": {"reason": None}
       for verb in ("earned", "redeemed", "reversed", "expired", "adjusted")},
}


def scrubbing_erased(event_type: str, handler):
    """Wrap a handler so that events about erased customers reach it without their personal data
    (event types that carry none are passed through unwrapped)."""
    scrub = _SCRUB.get(event_type)
    if scrub is None:
        return handler

    async def handle(tx: AsyncConnection, events: list[Inbound[Any]]) -> None:
        erased = await erased_among(tx, sorted({e.data.customer_id for e in events}))
        if erased:
            events = [Inbound(e.event, e.data.model_copy(update=scrub), e.record)
                      if e.data.customer_id in erased else e for e in events]
        await handler(tx, events)
    return handle
