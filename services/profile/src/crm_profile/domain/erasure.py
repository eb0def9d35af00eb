"""Erasure: which profiles one erasure covers, and what of a late event may be personal (pure).

A merge says two profiles are one person, and the duplicate's data may still sit under its own id
in services that keep it there, so a survivor is erased together with every profile merged into
it (directly or through another duplicate): one ``crm.profile.customer.erased`` names them all,
keyed by the survivor like the merges before it, so every consumer applies the merges first. A
duplicate is never erased on its own (the data it had now lives in its survivor): the command is
refused (409) with the survivor to erase.

Erased customers stay marked (``erased_at``): events about them that arrive later are still
applied, for the numbers (orders, spend, activity counts, points on the timeline), but without
what may be personal: identity and consents from the shop, interaction attributes, the free-text
reasons of points movements.
"""

from __future__ import annotations

from typing import Any

from crm_shared.errors import ConflictError, RuleViolation

from crm_profile.domain.records import ErasureGroup, GroupMember

MAX_MERGED = 1000  # ProfileCustomerErasedData.merged_customer_ids
MERGED_PROFILE = "merged-profile"


def CustomerErased() -> ConflictError:
    """The refusal of a write about an erased customer: it would store personal data again."""
    return ConflictError("this customer was erased; nothing new about them is recorded", code="customer-erased")


def refuse_duplicate(customer_id: str, survivor: str | None) -> None:
    """A duplicate is erased through its survivor; ``survivor`` None means a merge cycle."""
    if survivor is None:
        raise ConflictError(f"customer {customer_id!r} is in a merge cycle; resolve it first")
    if survivor != customer_id:
        raise ConflictError(f"customer {customer_id!r} was merged into {survivor!r}, which holds its data now: erase "
                            f"{survivor!r} (that erases the profiles merged into it too), or unmerge first",
                            code=MERGED_PROFILE, survivor_id=survivor)


def erasure_group(customer_id: str, survivor: str, rows: list[GroupMember]) -> ErasureGroup:
    """The profiles one erasure of ``survivor`` covers (``rows``: it and those merged into it, locked)."""
    if len(rows) > MAX_MERGED + 1:  # the event's bound: a longer list would be dead-lettered downstream
        raise RuleViolation(f"more than {MAX_MERGED} profiles were merged into {survivor!r}; unmerge some first",
                            code="unprocessable-content")
    first = next(row for row in rows if row.customer_id == survivor)
    if first.merged_into is not None:  # merged meanwhile, before the lock
        raise ConflictError(f"customer {customer_id!r} was just merged; retry", code=MERGED_PROFILE,
                            survivor_id=first.merged_into)
    return ErasureGroup(survivor=survivor, merged=sorted(r.customer_id for r in rows if r.customer_id != survivor),
                        newly_erased=first.erased_at is None, erased_at=first.erased_at)


# What of a late event's data may be personal, per event type: replaced before the use case sees it.
_IDENTITY = {"email": None, "phone": None, "name": None, "birthday": None, "gender": None, "city": None,
             "consents": None, "locale": None, "time_zone": None}
SCRUB: dict[str, dict[str, Any]] = {
    "commerce.customer.registered": _IDENTITY,
    "commerce.customer.updated": _IDENTITY,
    "commerce.interaction.recorded": {"attributes": {}},
    **{f"crm.loyalty.points.{verb}": {"reason": None}
       for verb in ("earned", "redeemed", "reversed", "expired", "adjusted")},
}
