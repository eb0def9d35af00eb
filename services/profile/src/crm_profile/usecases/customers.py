"""Staff's reads of the archive (search, orders, timeline, notes) and internal notes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from crm_shared.errors import CustomerErased, NotFoundError
from crm_shared.uow import UnitOfWork

from crm_profile.domain.changes import external_field
from crm_profile.domain.identity import name_search_key, normalise_email, normalise_phone
from crm_profile.domain.pii import PiiVault
from crm_profile.repository import ProfileRepository

Uow = UnitOfWork[ProfileRepository]


async def search_profiles(uow: Uow, vault: PiiVault, *, by: str, value: str, phone_region: str, after: str,
                          limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Customers matching one criterion (email, phone, name prefix, customer_id, or external_id as
    ``kind:value``), through the blind indexes: profiles (PII in clear: the caller masks it) and
    the cursor of the next page."""
    key: object = value
    kind = None
    if by == "email":
        key = vault.index("email", normalise_email(value))
    elif by == "phone":
        key = vault.index("phone", normalise_phone(value, phone_region))
    elif by == "name":
        key = vault.index("name", name_search_key(value)[:12])
    elif by == "external_id":
        kind, _, raw = value.partition(":")
        key = vault.index(external_field(kind), raw.strip())
    ids = [] if key is None else await uow.repo.search_customer_ids(by, key, after=after, limit=limit + 1, kind=kind)
    found = []
    for customer_id in ids[:limit]:
        profile = await uow.repo.load_profile(vault, customer_id)
        if profile is not None:
            found.append(profile)
    return found, ids[limit - 1] if len(ids) > limit else None


async def orders_page(uow: Uow, customer_id: str, *, status: str | None, after: tuple[datetime, str] | None,
                      limit: int) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
    rows = await uow.repo.orders_page(customer_id, status=status, after=after, limit=limit + 1)
    last = rows[limit - 1] if len(rows) > limit else None
    return rows[:limit], (last["sort_at"], last["order_id"]) if last else None


async def timeline_page(uow: Uow, customer_id: str, *, kind: str | None, since: datetime | None,
                        until: datetime | None, after: tuple[datetime, int] | None,
                        limit: int) -> tuple[list[dict[str, Any]], tuple[datetime, int] | None]:
    rows = await uow.repo.timeline_page(customer_id, kind=kind, since=since, until=until, after=after,
                                        limit=limit + 1)
    last = rows[limit - 1] if len(rows) > limit else None
    return rows[:limit], (last["occurred_at"], last["id"]) if last else None


async def add_note(uow: Uow, customer_id: str, *, author: str, body: str) -> dict[str, Any]:
    """An internal note (customers never see notes); refused for an erased customer."""
    if not await uow.repo.customer_exists(customer_id):
        raise NotFoundError.of("customer", customer_id)
    if await uow.repo.erased_among([customer_id]):
        raise CustomerErased()
    note = {"note_id": uuid.uuid4(), "customer_id": customer_id, "author": author, "body": body,
            "created_at": datetime.now(UTC)}
    await uow.repo.add_note(note)
    return note


async def list_notes(uow: Uow, customer_id: str, limit: int) -> list[dict[str, Any]]:
    return await uow.repo.notes_of(customer_id, limit)
