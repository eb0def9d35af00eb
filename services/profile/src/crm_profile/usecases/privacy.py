"""Privacy commands: PII shown in clear (audited), the data export, erasure, the PII access log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from crm_shared.errors import NotFoundError
from crm_shared.uow import UnitOfWork

from crm_profile.domain.erasure import erasure_group, refuse_duplicate
from crm_profile.domain.events import consent_changed, customer_erased
from crm_profile.domain.pii import PiiVault
from crm_profile.repository import ProfileRepository
from crm_profile.usecases.identity import read_profile
from crm_profile.usecases.segments import refresh_segments

Uow = UnitOfWork[ProfileRepository]
PII_FIELDS = ("email", "phone", "name", "address")


class Erased(NamedTuple):
    erased_at: datetime          # of the first erasure
    merged_customer_ids: list[str]  # the duplicates erased with it


async def reveal_profile(uow: Uow, vault: PiiVault, customer_id: str, *, actor: str, role: str, reason: str,
                         request_id: str | None) -> dict[str, Any]:
    """The profile with PII in clear for staff: the read is written to the PII access log."""
    profile = await read_profile(uow, vault, customer_id)
    await _audit(uow, profile, actor=actor, role=role, reason=reason, request_id=request_id)
    return profile


async def _audit(uow: Uow, profile: dict[str, Any], *, actor: str, role: str, reason: str,
                 request_id: str | None) -> None:
    await uow.repo.record_pii_access(actor=actor, role=role, customer_id=profile["customer_id"],
                                     fields=[f for f in PII_FIELDS if profile[f] is not None], reason=reason,
                                     request_id=request_id)


async def export_profile(uow: Uow, vault: PiiVault, customer_id: str, *, actor: str, role: str, own: bool,
                         reason: str | None, request_id: str | None) -> tuple[dict[str, Any], dict[str, list]]:
    """All data about a customer: the profile in clear and every other table's rows. Journaled as a
    privacy request first (the export shows its own request); a staff export is PII access too."""
    profile = await read_profile(uow, vault, customer_id)
    await uow.repo.record_privacy_request(customer_id=customer_id, kind="export", actor=actor, role=role,
                                          reason=reason or "the customer's own request")
    if not own:
        await _audit(uow, profile, actor=actor, role=role, reason=reason or "", request_id=request_id)
    related = await uow.repo.export_related(customer_id)
    for rows in related.values():
        for row in rows:
            for key, value in row.items():
                if isinstance(value, str) and key in ("items", "details"):
                    row[key] = orjson.loads(value)
    return profile, related


async def erase_profile(uow: Uow, customer_id: str, *, actor: str, role: str, reason: str, currency: str,
                        traceparent: str | None = None) -> Erased:
    """Erase a customer's personal data and that of every profile merged into it; announce it once
    (``crm.profile.customer.erased``). Erasing twice is harmless: the first time is kept."""
    survivor = await uow.repo.survivor_of(customer_id)
    if survivor is None and not await uow.repo.customer_exists(customer_id):
        raise NotFoundError.of("customer", customer_id)
    refuse_duplicate(customer_id, survivor)
    group = erasure_group(customer_id, survivor, await uow.repo.lock_erasure_group(survivor))
    erased_at = group.erased_at or datetime.now(UTC)
    ids = [group.survivor, *group.merged]
    withdrawn = await uow.repo.erase_profiles(ids, erased_at)
    # The consents the erasure withdrew, announced like any other change (campaigns stop at once).
    await uow.publish([consent_changed(customer_id=customer, channel=channel, granted=False, reason="erasure",
                                       changed_at=erased_at, traceparent=traceparent)
                       for customer, channel in withdrawn])
    await refresh_segments(uow, currency, ids)  # erased customers are in no segment
    await uow.repo.record_privacy_request(customer_id=customer_id, kind="erasure", actor=actor, role=role,
                                          reason=reason)
    if group.newly_erased:
        await uow.publish([customer_erased(customer_id=group.survivor, merged_customer_ids=group.merged,
                                           erased_at=erased_at, traceparent=traceparent)])
    return Erased(erased_at, group.merged)


async def pii_access_page(uow: Uow, *, customer_id: str | None, actor: str | None, before: int | None,
                          limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Who saw which customer's PII in clear, newest first; the cursor of the next page."""
    rows = await uow.repo.pii_access_page(customer_id=customer_id, actor=actor, before=before, limit=limit + 1)
    return rows[:limit], str(rows[limit - 1]["id"]) if len(rows) > limit else None
