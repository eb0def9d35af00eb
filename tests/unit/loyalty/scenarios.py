"""Use-case scenarios of the loyalty service, each ``async def scenario_x(uow)``.

They run on the in-memory repository (``tests/unit/loyalty/test_usecases.py``) and on the real
unit of work over PostgreSQL (``tests/service/loyalty/test_loyalty_usecases.py``): that the two
agree is what keeps the fake honest. Each scenario uses fresh customer ids and looks only at them,
so they may share a database. They read back through the use cases (``reads``), not the rows.
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from crm_loyalty.domain.earning import Line
from crm_loyalty.domain.programme import DEFAULT_PROGRAMME
from crm_loyalty.usecases import commands, customers, ledger_jobs, merges, orders, programme, reads
from crm_loyalty.usecases.common import ProgrammeStore
from crm_loyalty.usecases.orders import OrderFact
from crm_loyalty.usecases.programme import VersionMismatch
from crm_shared.errors import ConflictError, NotFoundError, NotPermitted, RuleViolation
from crm_shared.merges import Merge

NOW = datetime.now(UTC)


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def paid(customer: str, order: str, amount: str, *, days_ago: float = 1, currency: str = "CNY") -> OrderFact:
    total = Decimal(amount)
    return OrderFact(order_id=order, customer_id=customer, currency=currency, total_amount=total,
                     occurred_at=NOW - timedelta(days=days_ago), event_id=_id("e"),
                     lines=(Line("SKU-1", "tea", 1, total),))


def returned(customer: str, order: str, amount: str, *, refund: str | None = None) -> OrderFact:
    return OrderFact(order_id=order, customer_id=customer, currency="CNY", total_amount=Decimal(amount),
                     occurred_at=NOW, event_id=_id("e"), cancelled=refund is None,
                     refund_amount=Decimal(refund or 0))


async def balances(uow, store, customer: str) -> tuple[int, int, int]:
    account = await reads.account(uow, store, customer)
    return account["available"], account["pending"], account["debt"]


def jobs_on(uow):
    @asynccontextmanager
    async def open_uow():
        yield uow
    return open_uow


async def fund(uow, store, customer: str, amount: str = "1000") -> None:
    """Points available at once: an order paid long ago (its return window has closed)."""
    await orders.orders_paid(uow, store, [paid(customer, _id("o"), amount, days_ago=30)])


# -- orders ------------------------------------------------------------------------------------------

async def scenario_a_paid_order_earns_once_and_completion_releases(uow):
    store, customer, order = ProgrammeStore(), _id("c"), _id("o")
    await orders.orders_paid(uow, store, [paid(customer, order, "120.50")])
    await orders.orders_paid(uow, store, [paid(customer, order, "120.50")])  # again, under another event id
    assert await balances(uow, store, customer) == (0, 120, 0)
    await orders.orders_completed(uow, store, [paid(customer, order, "120.50")])
    assert await balances(uow, store, customer) == (120, 0, 0)
    entries, more = await reads.ledger_page(uow, customer, before=2**63 - 1, kind=None, limit=10)
    assert [e["kind"] for e in entries] == ["release", "earn"] and not more


async def scenario_a_refund_takes_back_in_proportion_and_a_cancel_the_rest(uow):
    store, customer, order = ProgrammeStore(), _id("c"), _id("o")
    await orders.orders_paid(uow, store, [paid(customer, order, "200")])
    await orders.orders_returned(uow, store, [returned(customer, order, "200", refund="50")])
    assert await balances(uow, store, customer) == (0, 150, 0)
    await orders.orders_returned(uow, store, [returned(customer, order, "200")])
    assert await balances(uow, store, customer) == (0, 0, 0)


async def scenario_a_return_naming_another_customer_is_refused(uow):
    store, customer, order = ProgrammeStore(), _id("c"), _id("o")
    await orders.orders_paid(uow, store, [paid(customer, order, "80")])
    with pytest.raises(ConflictError) as refused:
        await orders.orders_returned(uow, store, [returned(_id("other"), order, "80")])
    assert refused.value.code == "order-of-another-customer"


async def scenario_points_spent_off_an_order_are_applied_on_payment_and_given_back_on_cancel(uow):
    store, customer, order = ProgrammeStore(), _id("c"), _id("o")
    await fund(uow, store, customer, "1000")
    held = await commands.redeem(uow, store, customer_id=customer, kind="order_discount", points=300, currency="CNY",
                                 order_id=order, gift_sku=None, reason=None, actor=customer)
    assert held.status == "held" and held.money_value == Decimal(3) and held.available_after == 700
    await orders.orders_paid(uow, store, [paid(customer, order, "100", days_ago=0.1)])
    [redemption] = await reads.redemptions(uow, customer, 10)
    assert redemption["status"] == "applied"
    await orders.orders_returned(uow, store, [returned(customer, order, "100")])
    assert (await balances(uow, store, customer))[0] == 1000
    with pytest.raises(ConflictError) as closed:
        await commands.redeem(uow, store, customer_id=customer, kind="order_discount", points=10, currency="CNY",
                              order_id=order, gift_sku=None, reason=None, actor=customer)
    assert closed.value.code == "order-closed"


# -- commands ------------------------------------------------------------------------------------------

async def scenario_redemptions_refuse_what_the_rules_forbid(uow):
    store, customer = ProgrammeStore(), _id("c")
    with pytest.raises(NotFoundError):
        await commands.redeem(uow, store, customer_id=customer, kind="gift", points=10, currency=None,
                              order_id=None, gift_sku="MUG", reason=None, actor=customer)
    await fund(uow, store, customer, "100")
    gift = await commands.redeem(uow, store, customer_id=customer, kind="gift", points=40, currency=None,
                                 order_id=None, gift_sku="MUG", reason="a mug", actor=customer)
    assert gift.status == "applied" and gift.available_after == 60
    with pytest.raises(RuleViolation) as short:
        await commands.redeem(uow, store, customer_id=customer, kind="gift", points=61, currency=None,
                              order_id=None, gift_sku="MUG", reason=None, actor=customer)
    assert short.value.code == "insufficient-points"
    with pytest.raises(RuleViolation) as currency:
        await commands.redeem(uow, store, customer_id=customer, kind="order_discount", points=10, currency="EUR",
                              order_id=_id("o"), gift_sku=None, reason=None, actor=customer)
    assert currency.value.code == "unprocessable-content"
    stricter = DEFAULT_PROGRAMME.model_copy(update={
        "redemption": DEFAULT_PROGRAMME.redemption.model_copy(update={"min_points": 50})})
    await programme.replace_programme(uow, stricter, note="min 50", actor="sup", if_match=None)
    store.forget()
    with pytest.raises(RuleViolation, match="at least 50 points"):
        await commands.redeem(uow, store, customer_id=customer, kind="gift", points=10, currency=None,
                              order_id=None, gift_sku="MUG", reason=None, actor=customer)


async def scenario_adjustments_keep_to_the_limits(uow):
    store, customer = ProgrammeStore(), _id("c")
    agent = _id("agent")
    with pytest.raises(NotFoundError):
        await commands.adjust(uow, store, customer_id=customer, points=10, reason="x", ticket_id=None, actor=agent,
                              supervisor=False)
    await fund(uow, store, customer, "100")
    added = await commands.adjust(uow, store, customer_id=customer, points=500, reason="goodwill", ticket_id="t-1",
                                  actor=agent, supervisor=False)
    assert (added.available_after, added.debt_after, added.actor) == (600, 0, agent)
    with pytest.raises(NotPermitted) as above:
        await commands.adjust(uow, store, customer_id=customer, points=501, reason="x", ticket_id=None, actor=agent,
                              supervisor=False)
    assert above.value.code == "forbidden"
    with pytest.raises(RuleViolation) as too_big:
        await commands.adjust(uow, store, customer_id=customer, points=1_000_001, reason="x", ticket_id=None,
                              actor="sup", supervisor=True)
    assert too_big.value.code == "unprocessable-content"
    with pytest.raises(RuleViolation) as short:
        await commands.adjust(uow, store, customer_id=customer, points=-601, reason="x", ticket_id=None,
                              actor="sup", supervisor=True)
    assert short.value.code == "insufficient-points"
    for _ in range(9):  # 500 + 9 × 500 = the agent's 5,000 per 24 hours
        await commands.adjust(uow, store, customer_id=customer, points=-500 if _ % 2 else 500, reason="x",
                              ticket_id=None, actor=agent, supervisor=False)
    with pytest.raises(NotPermitted) as exhausted:
        await commands.adjust(uow, store, customer_id=customer, points=1, reason="x", ticket_id=None, actor=agent,
                              supervisor=False)
    assert exhausted.value.code == "adjustment-allowance-exhausted" and "5000 used" in exhausted.value.detail


async def scenario_an_erased_member_takes_no_manual_change_and_keeps_no_birthday(uow):
    store, customer = ProgrammeStore(), _id("c")
    await customers.customers_seen(uow, store, [customers.CustomerFact(customer, datetime(1990, 5, 17).date())])
    await fund(uow, store, customer, "100")
    assert await customers.customers_erased(uow, [([customer], NOW)]) == [customer]
    with pytest.raises(ConflictError) as erased:
        await commands.redeem(uow, store, customer_id=customer, kind="gift", points=10, currency=None,
                              order_id=None, gift_sku="MUG", reason=None, actor=customer)
    assert erased.value.code == "customer-erased"
    with pytest.raises(ConflictError):
        await commands.adjust(uow, store, customer_id=customer, points=10, reason="x", ticket_id=None, actor="sup",
                              supervisor=True)
    await customers.birthdays_changed(uow, [(customer, 5, 17)])
    result = await ledger_jobs.run_job(jobs_on(uow), store, "birthdays", NOW.replace(month=5, day=20),
                                       accept_as_of=True)
    assert (await balances(uow, store, customer))[0] == 100 and result.job == "birthdays"


async def scenario_the_programme_refuses_a_stale_if_match(uow):
    latest = (await programme.programme_versions(uow, 1))[0]
    with pytest.raises(VersionMismatch) as stale:
        await programme.replace_programme(uow, DEFAULT_PROGRAMME, note=None, actor="sup",
                                          if_match=str(latest["version"] + 7))
    assert stale.value.status == 412
    saved = await programme.replace_programme(uow, DEFAULT_PROGRAMME, note="same", actor="sup",
                                              if_match=f'"{latest["version"]}"')
    assert saved["version"] == latest["version"] + 1 and saved["created_by"] == "sup"


# -- jobs, merges, win-backs ---------------------------------------------------------------------------

async def scenario_the_release_and_expiry_jobs_move_a_members_points(uow):
    store, customer = ProgrammeStore(), _id("c")
    await orders.orders_paid(uow, store, [paid(customer, _id("o"), "70", days_ago=2)])
    open_uow = jobs_on(uow)
    await ledger_jobs.run_job(open_uow, store, "release", NOW + timedelta(days=6), accept_as_of=True)
    assert await balances(uow, store, customer) == (70, 0, 0)
    await ledger_jobs.run_job(open_uow, store, "expire", NOW + timedelta(days=800), accept_as_of=True)
    assert await balances(uow, store, customer) == (0, 0, 0)
    with pytest.raises(NotFoundError):
        await ledger_jobs.run_job(open_uow, store, "nonsense", None, accept_as_of=True)
    with pytest.raises(RuleViolation, match="JOBS_ACCEPT_AS_OF"):
        await ledger_jobs.run_job(open_uow, store, "release", NOW, accept_as_of=False)
    with pytest.raises(RuleViolation, match="timezone"):
        await ledger_jobs.run_job(open_uow, store, "release", datetime(2030, 1, 1), accept_as_of=True)


async def scenario_a_merge_moves_the_points_and_an_unmerge_moves_them_back(uow):
    store, survivor, duplicate = ProgrammeStore(), _id("s"), _id("d")
    await fund(uow, store, survivor, "100")
    await fund(uow, store, duplicate, "40")
    merge = Merge(survivor, duplicate, NOW, _id("e"))
    await merges.customers_merged(uow, store, [merge])
    await merges.customers_merged(uow, store, [Merge(survivor, duplicate, NOW, _id("e"))])  # again
    assert await balances(uow, store, survivor) == (140, 0, 0)
    assert await balances(uow, store, duplicate) == (0, 0, 0)
    await merges.customers_unmerged(uow, store, [merge])
    assert await balances(uow, store, survivor) == (100, 0, 0)
    assert await balances(uow, store, duplicate) == (40, 0, 0)


async def scenario_a_valuable_customer_turning_high_risk_gets_one_win_back(uow):
    store, customer = ProgrammeStore(), _id("c")
    await fund(uow, store, customer, "1500")
    risk = customers.RiskFact(customer, "low", "high", NOW, _id("e"))
    await customers.churn_risks_changed(uow, store, [risk])
    await customers.churn_risks_changed(uow, store, [customers.RiskFact(customer, "medium", "high",
                                                                        NOW + timedelta(days=1), _id("e"))])
    assert (await balances(uow, store, customer))[0] == 1500 + 500


async def scenario_reads_of_an_unknown_member_are_not_found_and_the_balance_goes_by_business_time(uow):
    store, customer = ProgrammeStore(), _id("c")
    with pytest.raises(NotFoundError):
        await reads.account(uow, store, customer)
    with pytest.raises(NotFoundError):
        await reads.balance_as_of(uow, customer, NOW)
    await fund(uow, store, customer, "250")
    before = await reads.balance_as_of(uow, customer, NOW - timedelta(days=60))
    after = await reads.balance_as_of(uow, customer, NOW + timedelta(seconds=1))
    assert (before["available"], before["pending"]) == (0, 0) and (after["available"], after["pending"]) == (250, 0)
    [(expires_at, points)] = await reads.expiries(uow, customer, 10)
    assert points == 250 and expires_at > NOW
    account = await reads.account(uow, store, customer)
    assert account["cash_value"] == {"CNY": "2.50"} and account["next_expiry"] == (expires_at, 250)


async def scenario_a_hold_whose_order_is_never_paid_is_voided_by_the_job(uow):
    store, customer, order = ProgrammeStore(), _id("c"), _id("o")
    await fund(uow, store, customer, "100")
    await commands.redeem(uow, store, customer_id=customer, kind="order_discount", points=60, currency="CNY",
                          order_id=order, gift_sku=None, reason=None, actor=customer)
    assert (await balances(uow, store, customer))[0] == 40
    await ledger_jobs.run_job(jobs_on(uow), store, "discount-holds", NOW + timedelta(hours=73), accept_as_of=True)
    [redemption] = await reads.redemptions(uow, customer, 10)
    assert redemption["status"] == "voided" and "not paid within 72 hours" in redemption["void_reason"]
    assert (await balances(uow, store, customer))[0] == 100


async def scenario_a_vip_gets_the_birthday_bonus_once_a_year(uow):
    store, customer = ProgrammeStore(), _id("c")
    for _ in range(5):  # 5 orders, 5,000 CNY: vip
        await fund(uow, store, customer, "1000")
    assert (await reads.account(uow, store, customer))["tier"] == "vip"
    as_of = NOW + timedelta(days=40)
    await customers.customers_seen(uow, store, [customers.CustomerFact(customer, as_of.date().replace(year=1984))])
    open_uow = jobs_on(uow)
    await ledger_jobs.run_job(open_uow, store, "birthdays", as_of, accept_as_of=True)
    await ledger_jobs.run_job(open_uow, store, "birthdays", as_of, accept_as_of=True)
    assert (await balances(uow, store, customer))[0] == 5000 + 500


SCENARIOS = [value for name, value in sorted(globals().items()) if name.startswith("scenario_")]
