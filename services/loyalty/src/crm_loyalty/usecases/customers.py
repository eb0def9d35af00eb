"""Customers: registration opens the membership, birthdays are kept as month and day, a valuable
customer turning high-risk gets a win-back offer, and an erasure scrubs what may be personal.

Erasure: the personal data goes, the numbers stay. What may be personal here: the birthday, and
free text people wrote: the reason an agent (or the customer redeeming) gave for a ledger movement
and a redemption's note. These are erased for the customer and every duplicate merged into it
(``crm.profile.customer.erased`` names them). Points, lots, orders and every ledger amount stay, so
the ledger still equals the balances; reasons the service wrote itself ("order o-1 paid") say
nothing about the person and stay too. The ids are kept in ``erased_customers``: an account opened
later for one of them (a late order still earns, anonymously) starts erased, a birthday sent later
is not stored, and no birthday greeting, win-back offer or manual change (redemption, adjustment)
reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from crm_shared.errors import CustomerErased

from crm_loyalty.domain.events import notification
from crm_loyalty.usecases import rules
from crm_loyalty.usecases.common import ProgrammeStore, Uow, now, save
from crm_loyalty.usecases.coupons import issue_rule_coupon

BIRTHDAY_YEAR = 2000  # accounts.birthday keeps the month and day only (see month_and_day)


def month_and_day(birthday: date) -> date:
    """Only the month and day of a birthday are kept (in the leap year 2000, so 29 February fits):
    the birthday job needs no more, and the year is the more identifying part."""
    return birthday.replace(year=BIRTHDAY_YEAR)


@dataclass(frozen=True, slots=True)
class CustomerFact:
    customer_id: str
    birthday: date | None
    traceparent: str | None = None
    # For the earning rules (usecases/rules.py): a registration (not an update) earns the sign-up
    # bonus and may name a referrer; fingerprints are keyed digests of the e-mail and phone, never them.
    registered: bool = False
    at: datetime | None = None
    event_id: str | None = None
    referred_by: str | None = None
    fingerprints: tuple[tuple[str, bytes], ...] = ()


async def customers_seen(uow: Uow, store: ProgrammeStore, customers: list[CustomerFact]) -> None:
    """Registration opens the membership (announcing its entry tier) and earns the sign-up bonus
    (``usecases/rules.py``, with the referral it names); the birthday's month and day are kept for
    the birthday job."""
    timeline = await store.timeline(uow)
    members = await uow.repo.lock_members([c.customer_id for c in customers],
                                          entry_tier=timeline.current.tiers.levels[0].name, at=now())
    for customer in customers:
        member = members.get(customer.customer_id)
        if member is not None and member.events and member.traceparent is None:
            member.traceparent = customer.traceparent
    await uow.repo.set_birthdays({c.customer_id: month_and_day(c.birthday) for c in customers
                                  if c.birthday is not None})
    await rules.customers_registered(uow, timeline, members, customers)
    await save(uow, [m for m in members.values() if m.events or m.book.movements])


async def birthdays_changed(uow: Uow, birthdays: list[tuple[str, int, int]]) -> None:
    """An agent corrected a birthday in the profile: the profile sends its month and day only
    (``(customer id, month, day)``)."""
    await uow.repo.set_birthdays({customer_id: date(BIRTHDAY_YEAR, month, day)
                                  for customer_id, month, day in birthdays})


async def customers_erased(uow: Uow, erasures: list[tuple[list[str], datetime]]) -> list[str]:
    """Apply erasures, each ``(erased ids, erased at)`` (idempotent: a replayed one changes nothing);
    the ids erased."""
    erased_at: dict[str, datetime] = {}
    for ids, at in erasures:
        for customer_id in ids:
            erased_at.setdefault(customer_id, at)
    return await uow.repo.erase(erased_at)


def refuse_if_erased(erased_at: datetime | None) -> None:
    """A manual change of an erased membership would record someone's words about them again."""
    if erased_at is not None:
        raise CustomerErased()


@dataclass(frozen=True, slots=True)
class RiskFact:
    customer_id: str
    old_level: str | None
    new_level: str
    scored_at: datetime
    event_id: str
    traceparent: str | None = None


async def churn_risks_changed(uow: Uow, store: ProgrammeStore, risks: list[RiskFact]) -> None:
    """A valuable customer turned high-risk: a win-back bonus or coupon, once per period."""
    timeline = await store.timeline(uow)
    programme = timeline.current
    rules = programme.win_back
    risky = [r for r in risks if r.new_level == "high" and r.old_level != "high"]
    if not rules.enabled or not risky:
        return
    repo = uow.repo
    members = await repo.lock_members([r.customer_id for r in risky], entry_tier=programme.tiers.levels[0].name,
                                      at=now(), create=False)
    last = await repo.last_win_backs(list(members))
    stats = await repo.rolling_spend(list(members), programme, now())
    for data in risky:
        member = members.get(data.customer_id)
        if member is None or member.erased_at is not None:
            continue
        at = data.scored_at
        previous = last.get(data.customer_id)
        if previous is not None and at - previous < timedelta(days=rules.period_days):
            continue
        if stats[data.customer_id][0] < rules.min_spend:
            continue
        member.traceparent = data.traceparent
        if rules.reward == "points":
            member.book.credit("bonus", rules.points, at=at, expiry_months=programme.earning.expiry_months,
                               reason="win-back offer", campaign="win_back", event_id=data.event_id)
            reward: dict[str, Any] = {"points": rules.points}
        elif rules.coupon_pool_id:
            # A personal code from the pool; the message carries its id, the customer reads the
            # code from their account's coupons.
            coupon = await issue_rule_coupon(uow, rules.coupon_pool_id, data.customer_id, "win_back", at)
            if coupon is None:
                continue  # the pool is gone or ended: no offer now, the next risk change tries again
            reward = {"coupon_id": coupon.coupon_id, "pool_id": coupon.pool_id,
                      "valid_until": coupon.valid_until.isoformat() if coupon.valid_until else None}
        else:
            reward = {"coupon_code": rules.coupon_code}
        member.events.append(notification(data.customer_id, "win_back_offer", reward, at, member.traceparent))
        await repo.record_win_back(data.customer_id, at, reward)
        last[data.customer_id] = at
    await save(uow, members.values())
