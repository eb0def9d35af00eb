"""Keeping the members' projection current from the other services' events (no reads of their
tables), and following erasure and merges. Never stores personal data: of a registration it keeps
the locale, the time zone, the birthday's month and day, the registration day and the consents.
Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crm_shared.uow import UnitOfWork

    from crm_campaigns.repository import CampaignsRepository

    Uow = UnitOfWork[CampaignsRepository]


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    customer_id: str
    locale: str | None = None
    time_zone: str | None = None
    birthday: date | None = None
    registered_at: datetime | None = None
    consent_email: bool | None = None
    consent_sms: bool | None = None


async def customers(uow: Uow, facts: Sequence[CustomerFacts]) -> None:
    await uow.repo.set_customer_facts([{
        "customer_id": f.customer_id, "locale": f.locale, "time_zone": f.time_zone,
        "birthday_month": f.birthday.month if f.birthday else None,
        "birthday_day": f.birthday.day if f.birthday else None,
        "registered_on": f.registered_at.date() if f.registered_at else None,
        "consent_email": f.consent_email, "consent_sms": f.consent_sms} for f in facts])


async def consents(uow: Uow, changes: Sequence[tuple[str, str, bool]]) -> None:
    """(customer id, channel, granted), in event order: the last one of a customer wins."""
    for channel in ("email", "sms"):
        latest = {customer: granted for customer, ch, granted in changes if ch == channel}
        await uow.repo.set_consents(channel, [{"customer_id": c, "granted": g} for c, g in latest.items()])


async def birthdays(uow: Uow, changes: Sequence[tuple[str, int, int]]) -> None:
    await uow.repo.set_birthdays([{"customer_id": c, "month": m, "day": d} for c, m, d in changes])


async def statistics(uow: Uow, rows: Sequence[tuple[str, int, Decimal, datetime | None]]) -> None:
    await uow.repo.set_statistics([{"customer_id": c, "order_count": n, "value": v, "last_order_at": last}
                                   for c, n, v, last in rows])


async def segments(uow: Uow, changes: Sequence[tuple[str, str]], *, entered: bool) -> None:
    await uow.repo.change_segments([{"customer_id": c, "segment_id": s} for c, s in changes], entered=entered)


async def tiers(uow: Uow, changes: Sequence[tuple[str, str]]) -> None:
    await uow.repo.set_tiers([{"customer_id": c, "tier": t} for c, t in dict(changes).items()])


async def points(uow: Uow, balances: Sequence[tuple[str, int]]) -> None:
    await uow.repo.set_points([{"customer_id": c, "available": a} for c, a in dict(balances).items()])


async def churn(uow: Uow, risks: Sequence[tuple[str, str, float]]) -> None:
    latest = {c: (level, score) for c, level, score in risks}
    await uow.repo.set_churn([{"customer_id": c, "level": lv, "score": s} for c, (lv, s) in latest.items()])


@dataclass(frozen=True, slots=True)
class PaidOrder:
    order_id: str
    customer_id: str
    paid_at: datetime
    currency: str
    amount: Decimal
    categories: tuple[str, ...]


async def orders_paid(uow: Uow, orders: Sequence[PaidOrder]) -> None:
    await uow.repo.record_orders([{"order_id": o.order_id, "customer_id": o.customer_id, "paid_at": o.paid_at,
                                   "currency": o.currency, "amount": o.amount, "categories": list(o.categories)}
                                  for o in orders])


async def orders_cancelled(uow: Uow, order_ids: Sequence[str]) -> None:
    await uow.repo.cancel_orders(order_ids)


async def orders_refunded(uow: Uow, refunds: Sequence[tuple[str, Decimal]]) -> None:
    await uow.repo.refund_orders([{"order_id": o, "refund": r} for o, r in refunds])


async def coupon_uses(uow: Uow, uses: Sequence[dict[str, Any]], *, released: bool) -> None:
    await uow.repo.record_coupon_uses(uses, released=released)


async def erase(uow: Uow, erased_at: dict[str, datetime]) -> None:
    await uow.repo.erase_members(erased_at)


async def merged(uow: Uow, merges: Sequence[Any]) -> None:
    for m in merges:
        await uow.repo.follow_merge(survivor=m.survivor, duplicate=m.duplicate, at=m.at, event_id=m.event_id)


async def unmerged(uow: Uow, unmerges: Sequence[Any]) -> None:
    for m in unmerges:
        await uow.repo.follow_unmerge(survivor=m.survivor, duplicate=m.duplicate, at=m.at)
