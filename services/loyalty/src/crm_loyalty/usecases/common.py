"""What the loyalty use cases share: the clock, the tier rule, giving spent points back, saving
books (and publishing their events), and the programme store (a cache of parsed versions)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from crm_shared.uow import UnitOfWork

from crm_loyalty.domain.events import notification, tier_changed
from crm_loyalty.domain.ledger import Lot
from crm_loyalty.domain.members import Member, Spent
from crm_loyalty.domain.programme import Programme, ProgrammeTimeline
from crm_loyalty.domain.rules import TIER_UP
from crm_loyalty.domain.tiers import decide
from crm_loyalty.repository import LoyaltyRepository

Uow = UnitOfWork[LoyaltyRepository]


def now() -> datetime:
    return datetime.now(UTC)


def apply_tier(member: Member, programme: Programme, spend: Decimal, orders: int, at: datetime, *,
               allow_downgrade: bool) -> None:
    """Re-evaluate a member's tier and queue the event (and an upgrade note) when it changes."""
    if member.below_tier_since is None and programme.tiers.qualified(spend, orders).name == member.tier:
        return  # the usual case on a paid order: still exactly where they are
    decision = decide(programme.tiers, current=member.tier, below_tier_since=member.below_tier_since,
                      spend=spend, orders=orders, at=at, allow_downgrade=allow_downgrade)
    member.below_tier_since = decision.below_tier_since
    if decision.changed:
        member.events.append(tier_changed(member.customer_id, member.tier, decision.tier, at, member.traceparent))
        if decision.upgraded and member.erased_at is None:  # no messages to someone erased
            member.events.append(notification(member.customer_id, "tier_upgrade",
                                              {"old_tier": member.tier, "new_tier": decision.tier}, at,
                                              member.traceparent))
        member.tier, member.tier_since = decision.tier, at
        if decision.upgraded and (bonus := programme.rules.tier_up.points_for(decision.tier, at)):
            member.tier_ups.append((decision.tier, at, bonus, programme.earning.expiry_months))


async def requalify(uow: Uow, members: Iterable[Member], programme: Programme, at: datetime, *,
                    allow_downgrade: bool = False) -> None:
    """Every member's tier on their rolling spend up to ``at``."""
    members = list(members)
    stats = await uow.repo.rolling_spend([m.customer_id for m in members], programme, at)
    for member in members:
        apply_tier(member, programme, *stats[member.customer_id], at, allow_downgrade=allow_downgrade)


async def give_back_spent(uow: Uow, member: Member, spent: Spent, lots: dict[int, Lot], points: int, *,
                          at: datetime, expiry_months: int, reason: str, event_id: str | None = None,
                          void_reason: str | None = None) -> None:
    """Give ``points`` of a redemption back into the lots they came from (voiding it with a reason)."""
    restored = member.book.give_back(
        [(lots[lot_id], left) for lot_id, left in spent.lots if lot_id in lots and left > 0], points, at=at,
        expiry_months=expiry_months, reason=reason, order_id=spent.order_id, redemption_id=spent.redemption_id,
        event_id=event_id)
    await uow.repo.record_given_back(spent, points, restored, void_reason=void_reason, at=at)


async def save(uow: Uow, members: Iterable[Member]) -> None:
    """Write the members' books back and publish their events, in the same transaction."""
    members = list(members)
    if any(m.tier_ups for m in members):
        await _grant_tier_ups(uow, members)
    await uow.publish(await uow.repo.save_members(members))


async def _grant_tier_ups(uow: Uow, members: list[Member]) -> None:
    """The tier-up rule's bonus, once per tier per member ever (``rule_grants``): a member who drops
    and regains a tier gets nothing the second time. The tier decision was taken on the current
    programme (``apply_tier``), so the grant names the current version."""
    version = (await uow.repo.programme_versions())[-1][0]
    owed = [(m, *up) for m in members for up in m.tier_ups]
    new = await uow.repo.record_grants([(m.customer_id, TIER_UP, tier, at, points, version, None)
                                        for m, tier, at, points, _ in owed])
    for member, tier, at, points, expiry_months in owed:
        if (member.customer_id, TIER_UP, tier) in new:
            new.discard((member.customer_id, TIER_UP, tier))
            member.book.credit("bonus", points, at=at, expiry_months=expiry_months, reason=f"tier {tier} reached",
                               campaign=f"rule:{TIER_UP}")
        member.tier_ups.clear()


class ProgrammeStore:
    """The programme versions, parsed once each; a batch asks which versions exist (one small query).

    HTTP commands may take a timeline up to ``max_age_s`` old (a redemption needs the rate, not the
    version saved this very second on another replica); event handlers always ask the database, so
    an order earns by exactly the version in force when it was paid.
    """

    def __init__(self) -> None:
        self._parsed: dict[int, Programme] = {}
        self._latest: tuple[float, ProgrammeTimeline] | None = None

    def forget(self) -> None:
        self._latest = None

    @staticmethod
    async def seed(uow: Uow, programme: Programme) -> None:
        await uow.repo.seed_programme(programme.model_dump_json())

    async def timeline(self, uow: Uow, *, max_age_s: float = 0.0) -> ProgrammeTimeline:
        if max_age_s and self._latest is not None and time.monotonic() - self._latest[0] < max_age_s:
            return self._latest[1]
        versions = await uow.repo.programme_versions()
        missing = [v for v, _ in versions if v not in self._parsed]
        if missing:
            for version, config in (await uow.repo.programme_configs(missing)).items():
                self._parsed[version] = Programme.model_validate(config)
        timeline = ProgrammeTimeline([(v, at, self._parsed[v]) for v, at in versions])
        self._latest = (time.monotonic(), timeline)
        return timeline
