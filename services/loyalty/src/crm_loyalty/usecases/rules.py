"""Earning rules beyond spend: sign-up, first order, product reviews and referrals (the tier-up
bonus is granted on save, ``usecases.common``).

Every bonus is written once in ``rule_grants`` (member, rule, subject) in the transaction that
credits it (ledger kind ``bonus``, campaign ``rule:<name>``), so replays, redeliveries and merges
never pay twice. Each event earns by the programme version in force at its business time.

Referrals: the new member names its referrer at registration (``referred_by``); the referral is
paid once, on the new member's first paid order, to both. The fraud guard compares keyed digests
(``member_fingerprints``) of the two members' e-mail, phone and payment tokens; the values
themselves are never stored. Called by ``customers.customers_seen`` and ``orders.orders_paid`` with
the accounts they locked; functions never commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from crm_loyalty.domain.members import Member
from crm_loyalty.domain.programme import ProgrammeTimeline
from crm_loyalty.domain.rules import (
    FIRST_ORDER,
    REFEREE,
    REFERRER,
    REVIEW,
    SIGNUP,
    first_order_points,
    referral_award,
    referral_refusal,
    review_points,
    review_subject,
    signup_points,
)
from crm_loyalty.usecases.common import ProgrammeStore, Uow, now, save

if TYPE_CHECKING:
    from crm_loyalty.usecases.customers import CustomerFact
    from crm_loyalty.usecases.orders import OrderFact


@dataclass(frozen=True, slots=True)
class _Grant:
    member: Member
    rule: str
    subject: str
    at: datetime
    points: int
    version: int
    event_id: str | None
    expiry_months: int
    reason: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.member.customer_id, self.rule, self.subject


async def _grant(uow: Uow, grants: list[_Grant]) -> None:
    """Write the grants and credit those that are new (a key granted before earns nothing)."""
    if not grants:
        return
    new = await uow.repo.record_grants([(g.member.customer_id, g.rule, g.subject, g.at, g.points, g.version,
                                         g.event_id) for g in grants])
    for grant in grants:
        if grant.key in new:
            new.discard(grant.key)
            grant.member.book.credit("bonus", grant.points, at=grant.at, expiry_months=grant.expiry_months,
                                     reason=grant.reason, campaign=f"rule:{grant.rule}", event_id=grant.event_id)


# -- registration ------------------------------------------------------------------------------------

async def customers_registered(uow: Uow, timeline: ProgrammeTimeline, members: dict[str, Member],
                               customers: list[CustomerFact]) -> None:
    """Keep the members' fingerprints, grant the sign-up bonus on a registration and record the
    referral it names (refused at once when it names the member itself or shares a fingerprint
    with the referrer; otherwise pending until the member's first paid order)."""
    repo = uow.repo
    prints = [(c.customer_id, kind, digest) for c in customers for kind, digest in c.fingerprints
              if c.customer_id in members and members[c.customer_id].erased_at is None]
    if prints:
        await repo.add_fingerprints(prints)
    grants: list[_Grant] = []
    referred: list[CustomerFact] = []
    for customer in customers:
        member = members.get(customer.customer_id)
        if not customer.registered or member is None:
            continue
        at = customer.at or now()
        version, programme = timeline.in_force_at(at)
        points = signup_points(programme.rules.signup, at)
        if points:
            grants.append(_Grant(member, SIGNUP, "", at, points, version, customer.event_id,
                                 programme.earning.expiry_months, "signed up"))
        if customer.referred_by:
            referred.append(customer)
    if referred:
        known = await repo.fingerprints([c.customer_id for c in referred] + [c.referred_by or "" for c in referred])
        rows = []
        for customer in referred:
            referrer = customer.referred_by or ""
            # An unknown referrer is only decided at the first paid order: its registration may be
            # on another partition, not applied yet.
            reason = referral_refusal(customer.customer_id, referrer, known[customer.customer_id], known[referrer])
            rows.append((customer.customer_id, referrer, customer.at or now(), "refused" if reason else "pending",
                         reason))
        await repo.add_referrals(rows)
    await _grant(uow, grants)


# -- paid orders -------------------------------------------------------------------------------------

def _rules_ever_enabled(timeline: ProgrammeTimeline) -> bool:
    return any(p.rules.first_order.enabled or p.rules.referral.enabled for _, _, p in timeline.versions)


async def orders_paid(uow: Uow, timeline: ProgrammeTimeline, members: dict[str, Member],
                      orders: list[OrderFact]) -> None:
    """After the batch's paid orders are stored: keep the payment fingerprints, and on a member's
    first paid order grant the first-order bonus and settle the referral naming them (which may
    lock and save the referrers' accounts too). Cheap when no rule was ever enabled: no query."""
    repo = uow.repo
    prints = [(o.customer_id, "payment", o.payment_digest) for o in orders
              if o.payment_digest is not None and members[o.customer_id].erased_at is None]
    if prints:
        await repo.add_fingerprints(prints)
    if not _rules_ever_enabled(timeline):
        return
    firsts: dict[str, OrderFact] = {}
    for order in sorted(orders, key=lambda o: (o.occurred_at, o.order_id)):
        firsts.setdefault(order.customer_id, order)
    earlier = await repo.with_earlier_paid_orders(list(firsts), [o.order_id for o in orders])
    firsts = {customer_id: order for customer_id, order in firsts.items() if customer_id not in earlier}
    if not firsts:
        return
    grants: list[_Grant] = []
    for order in firsts.values():
        version, programme = timeline.in_force_at(order.occurred_at)
        points = first_order_points(programme.rules.first_order, order.occurred_at, order.currency,
                                    order.total_amount)
        if points:
            grants.append(_Grant(members[order.customer_id], FIRST_ORDER, "", order.occurred_at, points, version,
                                 order.event_id, programme.earning.expiry_months, f"first order {order.order_id}"))
    pending = await repo.pending_referrals(list(firsts))
    referrers: dict[str, Member] = {}
    if pending:
        referrers = await _settle_referrals(uow, timeline, members, firsts, pending, grants)
    await _grant(uow, grants)
    if referrers:
        await save(uow, referrers.values())


async def _settle_referrals(uow: Uow, timeline: ProgrammeTimeline, members: dict[str, Member],
                            firsts: dict[str, OrderFact], pending: dict[str, str], grants: list[_Grant]
                            ) -> dict[str, Member]:
    """Pay or refuse each pending referral on its referee's first paid order; the referrers'
    accounts this locked (besides the batch's payers), for the caller to save."""
    repo = uow.repo
    # The referee's account lock (held) serialises everything about its referral; referrers are
    # locked after the payers, in id order.
    others = await repo.lock_members([r for r in set(pending.values()) if r not in members],
                                     entry_tier=timeline.current.tiers.levels[0].name, at=now(), create=False)
    everyone = {**members, **others}
    prints = await repo.fingerprints(list(pending) + list(pending.values()))
    longest = max(p.rules.referral.period_days for _, _, p in timeline.versions)
    since = min(firsts[r].occurred_at for r in pending) - timedelta(days=longest)
    recent: dict[str, list[datetime]] = defaultdict(list, await repo.recent_grants(set(pending.values()), REFERRER,
                                                                                   since))
    settled: list[tuple[str, str, str | None, datetime | None, str | None]] = []
    for referee, referrer in sorted(pending.items()):
        order = firsts[referee]
        at = order.occurred_at
        version, programme = timeline.in_force_at(at)
        referrer_member = everyone.get(referrer)
        erased = referrer_member is not None and referrer_member.erased_at is not None
        refusal = referral_refusal(referee, referrer, prints[referee], prints[referrer],
                                   referrer_known=referrer_member is not None, referrer_erased=erased)
        if refusal is not None:
            settled.append((referee, "refused", refusal, None, order.order_id))
            continue
        assert referrer_member is not None
        award = referral_award(programme.rules.referral, at, order.currency, order.total_amount, recent[referrer])
        expiry = programme.earning.expiry_months
        if award.referee_points:
            grants.append(_Grant(members[referee], REFEREE, "", at, award.referee_points, version, order.event_id,
                                 expiry, "referral: first order as a referred member"))
        if award.referrer_points:
            grants.append(_Grant(referrer_member, REFERRER, referee, at, award.referrer_points, version,
                                 order.event_id, expiry, "referral: a referred member's first order"))
            recent[referrer].append(at)
        settled.append((referee, award.status, award.reason, at if award.status == "paid" else None, order.order_id))
    await repo.settle_referrals(settled)
    return {customer_id: member for customer_id, member in others.items()
            if any(g.member is member for g in grants)}


# -- reviews -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReviewFact:
    """A ``commerce.interaction.recorded`` of kind ``review``."""

    customer_id: str
    occurred_at: datetime
    attributes: dict[str, Any]
    event_id: str
    traceparent: str | None = None


async def reviews_recorded(uow: Uow, store: ProgrammeStore, reviews: list[ReviewFact]) -> None:
    """The review bonus: once per product per member, capped per rolling period. Reviews no rule
    in force rewards cost one small query (the programme versions) and lock nothing."""
    timeline = await store.timeline(uow)
    candidates = []
    for review in reviews:
        version, programme = timeline.in_force_at(review.occurred_at)
        subject = review_subject(review.attributes)
        rule = programme.rules.review
        if subject is not None and rule.points and rule.active(review.occurred_at):
            candidates.append((review, version, programme, subject))
    if not candidates:
        return
    repo = uow.repo
    members = await repo.lock_members([r.customer_id for r, *_ in candidates],
                                      entry_tier=timeline.current.tiers.levels[0].name, at=now())
    done = await repo.granted([(r.customer_id, REVIEW, subject) for r, _, _, subject in candidates])
    longest = max(p.rules.review.period_days for _, _, p, _ in candidates)
    since = min(r.occurred_at for r, *_ in candidates) - timedelta(days=longest)
    recent: dict[str, list[datetime]] = defaultdict(list, await repo.recent_grants(members, REVIEW, since))
    grants = []
    for review, version, programme, subject in sorted(candidates, key=lambda c: c[0].occurred_at):
        key = (review.customer_id, REVIEW, subject)
        points = review_points(programme.rules.review, review.occurred_at, review.attributes,
                               recent[review.customer_id])
        if key in done or not points:
            continue
        done.add(key)
        recent[review.customer_id].append(review.occurred_at)
        member = members[review.customer_id]
        member.traceparent = review.traceparent
        grants.append(_Grant(member, REVIEW, subject, review.occurred_at, points, version, review.event_id,
                             programme.earning.expiry_months, f"review of {subject}"))
    await _grant(uow, grants)
    await save(uow, [m for m in members.values() if m.events or m.book.movements])


# -- reads -------------------------------------------------------------------------------------------

async def referrals_of(uow: Uow, referrer_id: str, limit: int) -> list[dict[str, Any]]:
    """The referrals a member made, newest first, with their status and why one was refused."""
    return await uow.repo.referrals_by(referrer_id, limit)
