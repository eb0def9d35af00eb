"""The scenarios of the PII key rotation's and the segments' use cases (tests/unit/profile/scenarios_pii.py)
on the real unit of work and repositories, on a migrated profile database: what proves the
in-memory repositories of the unit tier honest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
from crm_profile.domain.pii_rotation import SERVICE_APPLICATION, StoredCustomer
from crm_profile.repository.pii_rotation import _LOCK, PiiRotationRepository
from crm_profile.repository.segments import JOB_LOCK, SegmentRepository
from crm_shared.uow import unit_of_work
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.unit.profile.fakes_pii import Shopper
from tests.unit.profile.scenarios_pii import CURRENCY, NOW, PII_SCENARIOS, SEGMENT_SCENARIOS


@pytest.fixture
async def engine(make_database):
    database = make_database("profile")
    engine = create_async_engine(database.url)
    yield engine
    await engine.dispose()


class PgPiiWorld:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def units(self):
        return lambda: unit_of_work(self.engine, PiiRotationRepository)

    async def seed(self, customers: list[StoredCustomer]) -> None:
        async with self.engine.connect() as db:
            for c in customers:
                await db.execute(text("""
                    INSERT INTO customers (customer_id, email_enc, email_bidx, phone_enc, phone_bidx, name_enc,
                                           address_enc)
                    VALUES (:id, :email_enc, :email_bidx, :phone_enc, :phone_bidx, :name_enc, :address_enc)"""),
                    {"id": c.customer_id, **{f"{k}_enc": v for k, v in c.sealed.items()},
                     **{f"{k}_bidx": v for k, v in c.bidx.items()}})
                for prefix in c.name_index:
                    await db.execute(text("INSERT INTO customer_name_index (prefix_bidx, customer_id) "
                                          "VALUES (:p, :id)"), {"p": prefix, "id": c.customer_id})
                for kind, (enc, bidx) in c.external.items():
                    await db.execute(text("INSERT INTO customer_external_ids (customer_id, kind, value_enc, "
                                          "value_bidx, source) VALUES (:id, :kind, :enc, :bidx, 'test')"),
                                     {"id": c.customer_id, "kind": kind, "enc": enc, "bidx": bidx})
            await db.commit()

    async def stored(self) -> list[StoredCustomer]:
        async with self.engine.connect() as db:
            return await PiiRotationRepository(db).read_batch("", 10_000, lock=False)

    async def journal(self) -> list[tuple[str, str, bool]]:
        async with self.engine.connect() as db:
            rows = await db.execute(text("SELECT old_key_id, new_key_id, finished_at IS NOT NULL "
                                         "FROM pii_key_rotations ORDER BY id"))
            return [tuple(row) for row in rows]

    @asynccontextmanager
    async def service_connected(self) -> AsyncIterator[None]:
        service = create_async_engine(self.engine.url, connect_args={
            "server_settings": {"application_name": SERVICE_APPLICATION}})
        try:
            async with service.connect() as db:
                await db.execute(text("SELECT 1"))
                await db.commit()
                yield
        finally:
            await service.dispose()

    @asynccontextmanager
    async def rotation_running(self) -> AsyncIterator[None]:
        async with self.engine.connect() as db:
            await db.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK})
            await db.commit()
            try:
                yield
            finally:
                await db.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK})
                await db.commit()


class PgSegmentWorld:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def units(self):
        return lambda: unit_of_work(self.engine, SegmentRepository)

    async def seed(self, customers: list[Shopper]) -> None:
        async with self.engine.connect() as db:
            for c in customers:
                await db.execute(text("""
                    INSERT INTO customers (customer_id, order_count, first_order_at, last_order_at, tags, erased_at)
                    VALUES (:id, :orders, :last, :last, CAST(:tags AS text[]), :erased)"""),
                    {"id": c.customer_id, "orders": c.orders, "last": c.last_order_at, "tags": list(c.tags),
                     "erased": NOW if c.erased else None})
                if c.spend is not None:
                    await db.execute(text("INSERT INTO customer_spend (customer_id, currency, amount, refunded, "
                                          "order_count) VALUES (:id, :currency, :amount, 0, :orders)"),
                                     {"id": c.customer_id, "currency": CURRENCY, "amount": c.spend,
                                      "orders": c.orders})
            await db.commit()

    async def define_segment(self, segment_id: str, rule: dict) -> None:
        async with self.engine.connect() as db:
            await db.execute(text("INSERT INTO segments (segment_id, name, rule, created_by) "
                                  "VALUES (:id, :id, CAST(:rule AS jsonb), 'test')"),
                             {"id": segment_id, "rule": orjson.dumps(rule).decode()})
            await db.commit()

    async def members(self, segment_id: str) -> set[str]:
        async with self.engine.connect() as db:
            rows = await db.execute(text("SELECT customer_id FROM segment_members WHERE segment_id = :s"),
                                    {"s": segment_id})
            return set(rows.scalars())

    async def rfm(self) -> dict[str, tuple[int, int, int, str]]:
        async with self.engine.connect() as db:
            rows = await db.execute(text("SELECT customer_id, rfm_r, rfm_f, rfm_m, rfm_segment FROM customers "
                                         "WHERE rfm_segment IS NOT NULL"))
            return {row.customer_id: (row.rfm_r, row.rfm_f, row.rfm_m, row.rfm_segment) for row in rows}

    async def events(self) -> list[tuple[str, str, bool]]:
        async with self.engine.connect() as db:
            rows = await db.execute(text("SELECT event_type, value FROM outbox "
                                         "WHERE event_type LIKE 'crm.profile.segment.%' ORDER BY id"))
            data = [(row.event_type, orjson.loads(row.value)) for row in rows]  # the value is the event's data
        return [(value["customer_id"], value["segment_id"], kind.endswith("entered")) for kind, value in data]

    @asynccontextmanager
    async def holding(self, customer_ids: list[str]) -> AsyncIterator[None]:
        async with self.engine.connect() as batch:
            await batch.execute(text("SELECT 1 FROM customers WHERE customer_id = ANY(CAST(:ids AS text[])) "
                                     "ORDER BY customer_id FOR UPDATE"), {"ids": customer_ids})
            try:
                yield
            finally:
                await batch.rollback()

    @asynccontextmanager
    async def refresh_running(self) -> AsyncIterator[None]:
        async with self.engine.connect() as other:
            assert (await other.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": JOB_LOCK})).scalar()
            try:
                yield
            finally:
                await other.rollback()


@pytest.mark.parametrize("scenario", PII_SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
async def test_pii_rotation(scenario, engine):
    await scenario(PgPiiWorld(engine))


@pytest.mark.parametrize("scenario", SEGMENT_SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
async def test_segments(scenario, engine):
    await scenario(PgSegmentWorld(engine))
