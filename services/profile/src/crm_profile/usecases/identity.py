"""Identity changes, from the shop's events and from agents' edits, and what they announce."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from crm_shared.errors import CustomerErased, NotFoundError
from crm_shared.uow import UnitOfWork

from crm_profile.domain.changes import ConsentChange
from crm_profile.domain.events import birthday_changed, consent_changed, customer_updated
from crm_profile.domain.pii import PiiVault
from crm_profile.domain.records import CustomerStats, IdentityChange
from crm_profile.repository import ProfileRepository
from crm_profile.usecases.segments import refresh_segments

Uow = UnitOfWork[ProfileRepository]


async def announce_updates(uow: Uow, stats: list[CustomerStats], *, changed: list[str],
                           traceparents: dict[str, str | None]) -> None:
    """One ``crm.profile.customer.updated`` per changed customer, in the same transaction."""
    if not stats:
        return
    spend = await uow.repo.net_spend_of([s.customer_id for s in stats])
    await uow.publish([
        customer_updated(customer_id=s.customer_id, changed=changed, order_count=s.order_count,
                         total_spent=spend.get(s.customer_id, {}), first_order_at=s.first_order_at,
                         last_order_at=s.last_order_at, cause_traceparent=traceparents.get(s.customer_id))
        for s in stats])


async def announce_consents(uow: Uow, changes: list[ConsentChange], *,
                            traceparents: dict[str, str | None]) -> None:
    """One ``crm.profile.consent.changed`` per consent change recorded, in order, in the same
    transaction as the consent history (the campaigns service keeps its copy from them)."""
    if changes:
        await uow.publish([consent_changed(customer_id=c.customer_id, channel=c.channel, granted=c.granted,
                                           reason=c.reason, changed_at=c.changed_at,
                                           traceparent=traceparents.get(c.customer_id)) for c in changes])


async def record_identities(uow: Uow, vault: PiiVault, changes: list[IdentityChange], *, currency: str,
                            traceparents: dict[str, str | None]) -> None:
    """A batch of registrations and updates from the shop: stored, announced (statistics, and each
    consent change), segments re-evaluated."""
    written = await uow.repo.write_identities(vault, changes)
    await announce_updates(uow, written.stats, changed=["identity"], traceparents=traceparents)
    await announce_consents(uow, written.consents, traceparents=traceparents)
    await refresh_segments(uow, currency, sorted({c.customer_id for c in changes}))


async def update_profile(uow: Uow, vault: PiiVault, *, customer_id: str, actor: str, currency: str,
                         email: str | None = None, phone: str | None = None, name: str | None = None,
                         address: str | None = None, birthday: date | None = None, gender: str | None = None,
                         city: str | None = None, consents: dict[str, bool] | None = None,
                         locale: str | None = None, time_zone: str | None = None,
                         tags: list[str] | None = None, external_ids: dict[str, str] | None = None,
                         traceparent: str | None = None) -> None:
    """An agent's correction. Fields left None keep their value; a consent change is recorded with
    the agent as its source and announced (``crm.profile.consent.changed``); a birthday whose month or
    day changed is announced (loyalty grants its birthday bonus on it). An erased customer is
    refused: the edit would store personal data again."""
    before = await uow.repo.lock_for_edit(customer_id)
    if before is None:
        raise NotFoundError.of("customer", customer_id)
    old_birthday, erased_at = before
    if erased_at is not None:
        raise CustomerErased()
    source = f"agent:{actor}"
    change = IdentityChange(customer_id=customer_id, changed_at=datetime.now(UTC), source=source, email=email,
                            phone=phone, name=name, address=address, birthday=birthday, gender=gender, city=city,
                            consents=consents or {}, tags=tags, locale=locale, time_zone=time_zone,
                            consent_reason="agent")
    written = await uow.repo.write_identities(vault, [change])
    await announce_updates(uow, written.stats, changed=["identity"], traceparents={customer_id: traceparent})
    await announce_consents(uow, written.consents, traceparents={customer_id: traceparent})
    old_day = (old_birthday.month, old_birthday.day) if old_birthday else None
    if birthday is not None and (birthday.month, birthday.day) != old_day:
        # Loyalty reads birthdays from commerce.customer.*; an agent's correction reaches it so.
        await uow.publish([birthday_changed(customer_id=customer_id, birthday=birthday,
                                            changed_at=change.changed_at, traceparent=traceparent)])
    if external_ids:
        await uow.repo.set_external_ids(vault, customer_id, external_ids, source=source)
    await refresh_segments(uow, currency, [customer_id])  # tags, city, gender


async def withdraw_consents(uow: Uow, vault: PiiVault, unsubscribes: list[tuple[str, str, datetime]], *,
                            traceparents: dict[str, str | None]) -> int:
    """Unsubscribes from campaign messages, ``(customer, channel, at)``: the channel's consent is
    withdrawn (source ``unsubscribe`` in the history) and announced, when it was not withdrawn
    already. Unknown and erased customers are skipped: there is nothing to withdraw, and a profile
    must not be created for them. Returns how many consents changed."""
    live = await uow.repo.live_customers_among(sorted({customer_id for customer_id, _, _ in unsubscribes}))
    changes = [IdentityChange(customer_id=customer_id, changed_at=at, source="unsubscribe", consents={channel: False},
                              consent_reason="unsubscribe")
               for customer_id, channel, at in unsubscribes if customer_id in live]
    if not changes:
        return 0
    written = await uow.repo.write_identities(vault, changes)
    await announce_consents(uow, written.consents, traceparents=traceparents)
    return len(written.consents)


async def read_profile(uow: Uow, vault: PiiVault, customer_id: str) -> dict[str, Any]:
    """The customer's archive with PII in clear and external ids (the route masks what it must)."""
    profile = await uow.repo.load_profile(vault, customer_id)
    if profile is None:
        raise NotFoundError.of("customer", customer_id)
    profile["external_ids"] = await uow.repo.external_ids_of(vault, customer_id)
    return profile
