"""The scheduled segment refresh on the real PostgreSQL (component tests: the service's own
functions in-process, an event batch's transaction interleaved by hand where it matters).

- RFM names computed in SQL are the domain's names, for every score and on a varied base;
- a refresh racing an event batch neither deadlocks nor fails, and neither does the batch
  (the refresh once locked every changed customer in one transaction, in its own order, while
  batches lock theirs in theirs: PostgreSQL aborted one of the two as a deadlock, and the
  service logged ``segment refresh failed``);
- a second replica's refresh does not run while one runs.
"""

from __future__ import annotations

import asyncio
import math
import random
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import orjson
import pytest
from crm_profile.domain.pii import PiiVault
from crm_profile.domain.segments import RFM_SEGMENTS, rfm_segment, rfm_segment_sql
from crm_profile.handlers import HANDLERS
from crm_profile.repository import ProfileRepository
from crm_profile.repository.segments import JOB_LOCK, SegmentRepository
from crm_profile.settings import decode_pii_key
from crm_profile.usecases.segments import RefreshResult, refresh_all
from crm_shared.bus import Inbound
from crm_shared.events.catalogue import data_model_for
from crm_shared.uow import UnitOfWork, unit_of_work
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.harness.events import order_event
from tests.harness.infra import TEST_PII_KEY, wait_until


def _units(engine):
    """What the refresh takes: a callable opening units of work on the engine."""
    return lambda: unit_of_work(engine, SegmentRepository)


NOW = datetime.now(UTC).replace(microsecond=0)
CURRENCY = "CNY"


@dataclass
class Customer:
    customer_id: str
    orders: int
    last_order_at: datetime | None
    spend: Decimal | None  # net, in CURRENCY; None: no spend row in that currency
    erased: bool = False


@pytest.fixture
def database(make_database):
    return make_database("profile")


@pytest.fixture
async def engine(database):
    engine = create_async_engine(database.url)
    yield engine
    await engine.dispose()


def _varied_base(rng: random.Random, size: int) -> list[Customer]:
    """Many ties (one-time buyers, same days, same amounts), customers without an order, some
    without spend in the RFM currency, and erased ones."""
    base = []
    for i in range(size):
        orders = rng.choice([0, 1, 1, 1, 1, 2, 2, 3, 4, 5, 8, 13])
        last = NOW - timedelta(days=rng.choice([0, 1, 1, 7, 30, 30, 90, 200, 400]), hours=rng.randint(0, 3))
        spend = rng.choice([None, Decimal("0"), Decimal("60.00"), Decimal("60.00"),
                            Decimal(rng.randint(1, 99_999)) / 100])
        base.append(Customer(f"c-{i:05d}", orders, last if orders else None, spend if orders else None,
                             erased=rng.random() < 0.03))
    return base


async def _seed(engine, base: list[Customer]) -> None:
    async with engine.connect() as tx:
        await tx.execute(text("""
            INSERT INTO customers (customer_id, order_count, first_order_at, last_order_at, erased_at)
            SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:orders AS int[]), CAST(:lasts AS timestamptz[]),
                                 CAST(:lasts AS timestamptz[]), CAST(:erased AS timestamptz[]))"""),
            {"ids": [c.customer_id for c in base], "orders": [c.orders for c in base],
             "lasts": [c.last_order_at for c in base], "erased": [NOW if c.erased else None for c in base]})
        spenders = [c for c in base if c.spend is not None]
        # Gross amount and refunds: M is the net, and other currencies never count.
        await tx.execute(text("""
            INSERT INTO customer_spend (customer_id, currency, amount, refunded, order_count)
            SELECT id, currency, amount, refunded, 1 FROM unnest(CAST(:ids AS text[]), CAST(:currencies AS text[]),
                CAST(:amounts AS numeric[]), CAST(:refunded AS numeric[])) AS t(id, currency, amount, refunded)"""),
            {"ids": [c.customer_id for c in spenders] * 2,
             "currencies": [CURRENCY] * len(spenders) + ["USD"] * len(spenders),
             "amounts": [c.spend + 10 for c in spenders] + [Decimal(5000)] * len(spenders),
             "refunded": [Decimal(10)] * len(spenders) + [Decimal(0)] * len(spenders)})
        await tx.commit()


def _expected_rfm(base: list[Customer]) -> dict[str, tuple[int, int, int, str]]:
    """Quintiles of the percent rank ((rank − 1) / (n − 1), ties share the lowest rank), in Python."""
    scored = [c for c in base if c.orders > 0 and not c.erased]

    def quintiles(values: list) -> list[int]:
        ordered, n = sorted(values), len(values)
        return [min(5, 1 + math.floor((bisect_left(ordered, v) / (n - 1) if n > 1 else 0.0) * 5)) for v in values]

    rs = quintiles([c.last_order_at for c in scored])
    fs = quintiles([c.orders for c in scored])
    ms = quintiles([c.spend or Decimal(0) for c in scored])
    return {c.customer_id: (r, f, m, rfm_segment(r, f, m)) for c, r, f, m in zip(scored, rs, fs, ms, strict=True)}


async def _stored_rfm(database) -> dict[str, tuple[int, int, int, str]]:
    rows = await database.fetch("SELECT customer_id, rfm_r, rfm_f, rfm_m, rfm_segment FROM customers "
                                "WHERE rfm_segment IS NOT NULL")
    return {row["customer_id"]: (row["rfm_r"], row["rfm_f"], row["rfm_m"], row["rfm_segment"]) for row in rows}


async def _segment_events(database) -> list[tuple[str, str, str]]:
    rows = await database.fetch("SELECT event_type, value FROM outbox WHERE event_type LIKE 'crm.profile.segment.%' "
                                "ORDER BY id")
    data = [(row["event_type"], orjson.loads(row["value"])) for row in rows]  # the value is the event's data
    return [(kind.rsplit(".", 1)[1], value["customer_id"], value["segment_id"]) for kind, value in data]


async def test_sql_names_every_rfm_score_as_the_domain_does(engine):
    async with engine.connect() as db:
        rows = (await db.execute(text(f"""
            SELECT r, f, m, {rfm_segment_sql("r", "f", "m")} AS name
            FROM generate_series(1, 5) r, generate_series(1, 5) f, generate_series(1, 5) m"""))).all()
    assert len(rows) == 125
    assert {(row.r, row.f, row.m): row.name for row in rows} == {
        (row.r, row.f, row.m): rfm_segment(row.r, row.f, row.m) for row in rows}
    assert {row.name for row in rows} == set(RFM_SEGMENTS)


async def test_the_refresh_scores_a_varied_base_as_the_domain_rules_do(engine, database):
    base = _varied_base(random.Random(17), 700)
    await _seed(engine, base)
    expected = _expected_rfm(base)
    # A custom segment over RFM and spend, and two memberships the refresh must remove: an erased
    # customer's and one that no longer matches.
    rule = {"all": [{"field": "rfm_segment", "op": "=", "value": "champions"},
                    {"field": "net_spent", "op": ">=", "value": 300}]}
    erased = next(c.customer_id for c in base if c.erased)
    not_matching = next(c for c, scores in expected.items() if scores[3] == "lost")
    await database.execute("INSERT INTO segments (segment_id, name, rule, created_by) VALUES "
                           "('big-champions', 'Big champions', $1, 'sup-1')", orjson.dumps(rule).decode())
    await database.execute("INSERT INTO segment_members (segment_id, customer_id) VALUES "
                           "('big-champions', $1), ('big-champions', $2)", erased, not_matching)
    members = sorted(c.customer_id for c in base if c.customer_id in expected
                     and expected[c.customer_id][3] == "champions" and (c.spend or 0) >= 300)
    assert members and len(set(expected[c][3] for c in expected)) == len(RFM_SEGMENTS)  # the base is varied

    # Chunks of 64: the walk crosses chunk boundaries, each its own transaction.
    result = await refresh_all(_units(engine), CURRENCY, chunk_size=64)

    assert result == RefreshResult(scored=len(expected), membership_changes=len(members) + 2, deferred=0)
    assert await _stored_rfm(database) == expected
    assert await database.fetch_texts("SELECT customer_id FROM segment_members ORDER BY customer_id") == members
    assert sorted(await _segment_events(database)) == sorted(
        [("entered", c, f"rfm:{expected[c][3]}") for c in expected]
        + [("entered", c, "big-champions") for c in members]
        + [("exited", erased, "big-champions"), ("exited", not_matching, "big-champions")])

    # Nothing changed: nothing written, no event.
    events = len(await _segment_events(database))
    assert await refresh_all(_units(engine), CURRENCY, chunk_size=64) == RefreshResult(len(expected), 0, 0)
    assert len(await _segment_events(database)) == events


def _paid(customer_id: str, n: int):
    event = order_event("paid", customer_id, f"o-{customer_id}-{n}", amount="900.00", at=NOW)
    return Inbound(event, data_model_for(event.type).model_validate(event.data), None)


def _paid_handler():
    """The consumer's handler of paid orders, as one stage of a batch on ``connection``."""
    resources = SimpleNamespace(vault=PiiVault(decode_pii_key(TEST_PII_KEY)), phone_default_region="CN",
                                rfm_currency=CURRENCY)

    async def on_paid(connection, events) -> None:
        await HANDLERS["commerce.order.paid"](resources, UnitOfWork(connection, ProfileRepository), events)
    return on_paid


async def _waiting_on_a_lock(database) -> int:
    return await database.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND wait_event_type = 'Lock'")


async def test_a_refresh_racing_an_event_batch_neither_deadlocks_nor_fails(engine, database):
    base = _varied_base(random.Random(5), 400)
    await _seed(engine, base)
    await database.execute("INSERT INTO segments (segment_id, name, rule, created_by) VALUES "
                           "('spenders', 'Spenders', $1, 'sup-1')",
                           orjson.dumps({"field": "net_spent", "op": ">=", "value": 1000}).decode())
    on_paid = _paid_handler()
    live = [c.customer_id for c in base if not c.erased]
    held = live[len(live) // 2]

    async with engine.connect() as batch:
        # The batch's first stage holds one customer's row...
        await on_paid(batch, [_paid(held, 1)])
        refresh = asyncio.create_task(refresh_all(_units(engine), CURRENCY, chunk_size=50, passes=2, pause_s=0.05))
        await wait_until(lambda: _settled(refresh, database), what="the refresh finished or waits on the batch")
        # ...and its next stage touches every other customer, in reverse order (the refresh
        # went the other way). Before, the two waited on each other here.
        await on_paid(batch, [_paid(customer, 2) for customer in reversed(live) if customer != held])
        await batch.commit()
    result = await asyncio.wait_for(refresh, 20)

    # The refresh went round the customer the batch held, and the next run scores them too.
    scored = len([c for c in base if c.orders > 0 and not c.erased])
    assert result == RefreshResult(scored=scored, membership_changes=result.membership_changes, deferred=1)
    assert held not in await _stored_rfm(database)
    assert await database.fetchval("SELECT count(*) FROM orders") == len(live)
    after = [c if c.erased else Customer(c.customer_id, c.orders + 1, NOW, (c.spend or Decimal(0)) + 900)
             for c in base]
    second = await refresh_all(_units(engine), CURRENCY, chunk_size=50)
    assert second is not None and second.deferred == 0
    assert await _stored_rfm(database) == _expected_rfm(after)
    spenders = sorted(c.customer_id for c in after if not c.erased and c.spend >= 1000)
    assert 0 < len(spenders) < len(live)
    assert await database.fetch_texts("SELECT customer_id FROM segment_members ORDER BY customer_id") == spenders


async def _settled(task: asyncio.Task, database) -> bool:
    return task.done() or await _waiting_on_a_lock(database) > 0


async def test_refreshes_and_batches_racing_freely_all_complete(engine, database):
    """No hand-made interleaving: three refreshes in small chunks while batches of every customer,
    in shuffled orders, commit one after another. Any deadlock fails one side."""
    base = [c for c in _varied_base(random.Random(9), 300) if c.orders and not c.erased]
    await _seed(engine, base)
    on_paid = _paid_handler()
    rng = random.Random(3)

    async def batches() -> int:
        for n in range(6):
            order = [c.customer_id for c in base]
            rng.shuffle(order)
            async with engine.connect() as batch:
                for start in range(0, len(order), 60):  # stages of 60 customers, each a statement
                    await on_paid(batch, [_paid(customer, n) for customer in order[start:start + 60]])
                await batch.commit()
        return 6

    async def refreshes() -> list[RefreshResult | None]:
        return [await refresh_all(_units(engine), CURRENCY, chunk_size=20, pause_s=0.01) for _ in range(3)]

    done, results = await asyncio.wait_for(asyncio.gather(batches(), refreshes()), 60)
    assert done == 6 and all(r is not None and r.scored == len(base) for r in results)
    orders = sum(c.orders for c in base) + 6 * len(base)
    assert await database.fetchval("SELECT sum(order_count) FROM customers") == orders


async def test_a_second_replica_does_not_refresh_while_one_does(engine, database):
    base = [c for c in _varied_base(random.Random(11), 50) if c.orders and not c.erased]
    await _seed(engine, base)
    on_paid = _paid_handler()
    other = create_async_engine(database.url)  # the other replica's pool
    try:
        async with engine.connect() as batch:
            await on_paid(batch, [_paid(base[0].customer_id, 1)])  # keeps the first refresh in its passes
            first = asyncio.create_task(refresh_all(_units(engine), CURRENCY, passes=2, pause_s=1.0))
            await wait_until(lambda: _holds_job(database), what="the first refresh holds the job")
            assert await refresh_all(_units(other), CURRENCY) is None
            await batch.commit()
        first_result = await asyncio.wait_for(first, 20)
        assert first_result.scored == len(base)
        assert await refresh_all(_units(other), CURRENCY) == RefreshResult(len(base), 0, 0)
    finally:
        await other.dispose()


async def _holds_job(database) -> bool:
    return await database.fetchval(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        "WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.objid = $1", JOB_LOCK) == 1


async def test_a_refresh_cancelled_midway_releases_the_job_for_the_next_run(engine, database):
    """A service stopping mid-refresh returns its connections to the pool: the job lock and the
    snapshot must not stay with them."""
    base = [c for c in _varied_base(random.Random(13), 60) if c.orders and not c.erased]
    await _seed(engine, base)
    on_paid = _paid_handler()
    lifo = create_async_engine(database.url, pool_use_lifo=True)  # the next run reuses the job's connections
    try:
        async with lifo.connect() as batch:
            await on_paid(batch, [_paid(base[0].customer_id, 1)])  # keeps the refresh in its passes
            first = asyncio.create_task(refresh_all(_units(lifo), CURRENCY, passes=2, pause_s=30))
            await wait_until(lambda: _holds_job(database), what="the refresh holds the job")
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            await batch.commit()
        assert not await _holds_job(database)
        assert await refresh_all(_units(lifo), CURRENCY) == RefreshResult(len(base), 0, 0)
        assert len(await _stored_rfm(database)) == len(base)
    finally:
        await lifo.dispose()
