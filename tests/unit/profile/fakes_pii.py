"""In-memory repositories for the PII key rotation's and the segments' use cases, and the "worlds"
the shared scenarios (``scenarios_pii.py``) run in: a world seeds rows, opens units of work and
plays the other actors (a running service, a concurrent rotation or refresh, an event batch
holding rows). ``tests/service/profile/test_pii_and_segment_scenarios.py`` runs the same
scenarios in a world on PostgreSQL.

Rows live in dicts shared by every unit a world opens; a unit's writes are visible at once (the
scenarios never depend on a rollback undoing a write). Only the methods the use cases call.
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_left
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from crm_profile.domain.pii_rotation import Rewrite, StoredCustomer
from crm_profile.domain.segments import AllOf, AnyOf, NotRule, Rule, TagCondition, parse_rule, rfm_segment
from crm_profile.repository.segments import MembershipChange, RfmChange

from tests.unit.fakes import FakeUnitOfWork

# ---- PII key rotation


@dataclass
class PiiRows:
    customers: dict[str, StoredCustomer] = field(default_factory=dict)
    journal: list[dict[str, Any]] = field(default_factory=list)
    has_journal: bool = True
    rotation_locked: bool = False   # a session holds the rotation's advisory lock
    sessions: dict[str, int] = field(default_factory=dict)  # application_name → sessions


class FakePiiRotationRepository:
    def __init__(self, rows: PiiRows) -> None:
        self.rows = rows

    async def read_batch(self, after: str, limit: int, *, lock: bool) -> list[StoredCustomer]:
        ids = sorted(c for c in self.rows.customers if c > after)[:limit]
        return [copy.deepcopy(self.rows.customers[c]) for c in ids]

    async def write_batch(self, rewrites: list[Rewrite]) -> int:
        written = 0
        for r in rewrites:
            stored = self.rows.customers[r.customer_id]
            stored.sealed, stored.bidx = dict(r.sealed), dict(r.bidx)
            if r.name_index is not None:
                stored.name_index = r.name_index
                written += len(r.name_index)
            stored.external = {**stored.external, **{k: v for k, v in r.external.items() if k in stored.external}}
        return written

    async def try_lock_rotation(self) -> bool:
        if self.rows.rotation_locked:
            return False
        self.rows.rotation_locked = True
        return True

    async def unlock_rotation(self) -> None:
        self.rows.rotation_locked = False

    async def journal_exists(self) -> bool:
        return self.rows.has_journal

    async def sessions_of(self, application_name: str) -> int:
        return self.rows.sessions.get(application_name, 0)

    async def start_journal(self, old_key_id: str, new_key_id: str) -> int:
        self.rows.journal.append({"old_key_id": old_key_id, "new_key_id": new_key_id,
                                  "started_at": datetime.now(UTC), "finished_at": None, "report": None})
        return len(self.rows.journal)

    async def record_journal(self, journal_id: int, report_json: str, *, complete: bool) -> None:
        entry = self.rows.journal[journal_id - 1]
        entry["report"], entry["finished_at"] = report_json, datetime.now(UTC) if complete else None

    async def latest_rotation(self) -> Any:
        if not self.rows.has_journal or not self.rows.journal:
            return None
        return SimpleNamespace(**{k: v for k, v in self.rows.journal[-1].items() if k != "report"})

    async def key_sample(self) -> list[tuple[str, bytes]]:
        holding = [c for c in self.rows.customers.values() if any(v is not None for v in c.sealed.values())][:5]
        return [(name, sealed) for c in holding for name, sealed in c.sealed.items() if sealed is not None]


class FakePiiWorld:
    def __init__(self) -> None:
        self.rows = PiiRows()

    def units(self):
        @asynccontextmanager
        async def open_unit() -> AsyncIterator[FakeUnitOfWork[FakePiiRotationRepository]]:
            yield FakeUnitOfWork(FakePiiRotationRepository(self.rows))
        return open_unit

    async def seed(self, customers: list[StoredCustomer]) -> None:
        for customer in customers:
            self.rows.customers[customer.customer_id] = copy.deepcopy(customer)

    async def stored(self) -> list[StoredCustomer]:
        return [copy.deepcopy(self.rows.customers[c]) for c in sorted(self.rows.customers)]

    async def journal(self) -> list[tuple[str, str, bool]]:
        return [(j["old_key_id"], j["new_key_id"], j["finished_at"] is not None) for j in self.rows.journal]

    @asynccontextmanager
    async def service_connected(self) -> AsyncIterator[None]:
        self.rows.sessions["crm-profile"] = self.rows.sessions.get("crm-profile", 0) + 1
        try:
            yield
        finally:
            self.rows.sessions["crm-profile"] -= 1

    @asynccontextmanager
    async def rotation_running(self) -> AsyncIterator[None]:
        self.rows.rotation_locked = True
        try:
            yield
        finally:
            self.rows.rotation_locked = False


# ---- segments


@dataclass
class Shopper:
    """A customer as the refresh sees one (what the scenarios seed)."""

    customer_id: str
    orders: int = 0
    last_order_at: datetime | None = None
    spend: Decimal | None = None  # net, in the RFM currency
    tags: tuple[str, ...] = ()
    erased: bool = False
    rfm: tuple[int, int, int, str] | None = None  # rfm_r, rfm_f, rfm_m, rfm_segment as stored


@dataclass
class SegmentRows:
    customers: dict[str, Shopper] = field(default_factory=dict)
    segments: dict[str, Any] = field(default_factory=dict)  # segment_id → rule as stored
    members: set[tuple[str, str]] = field(default_factory=set)  # (segment_id, customer_id)
    held: set[str] = field(default_factory=set)  # rows an event batch holds
    refresh_locked: bool = False
    snapshot: dict[str, tuple[int, int, int, str]] | None = None


def _matches(rule: Rule, customer: Shopper) -> bool:
    """The rules the scenarios use, evaluated in Python (the real repository compiles them to SQL)."""
    if isinstance(rule, AllOf):
        return all(_matches(r, customer) for r in rule.all)
    if isinstance(rule, AnyOf):
        return any(_matches(r, customer) for r in rule.any)
    if isinstance(rule, NotRule):
        return not _matches(rule.not_, customer)
    if isinstance(rule, TagCondition):
        return rule.has_tag in customer.tags
    raise NotImplementedError(f"the fake evaluates tag rules only, not {type(rule).__name__}")


def expected_rfm(base: list[Shopper]) -> dict[str, tuple[int, int, int, str]]:
    """Quintiles of the percent rank ((rank − 1) / (n − 1), ties share the lowest rank), in Python."""
    scored = [c for c in base if c.orders > 0 and not c.erased]

    def quintiles(values: list) -> list[int]:
        ordered, n = sorted(values), len(values)
        return [min(5, 1 + math.floor((bisect_left(ordered, v) / (n - 1) if n > 1 else 0.0) * 5)) for v in values]

    rs = quintiles([c.last_order_at for c in scored])
    fs = quintiles([c.orders for c in scored])
    ms = quintiles([c.spend or Decimal(0) for c in scored])
    return {c.customer_id: (r, f, m, rfm_segment(r, f, m)) for c, r, f, m in zip(scored, rs, fs, ms, strict=True)}


class FakeSegmentRepository:
    def __init__(self, rows: SegmentRows) -> None:
        self.rows = rows

    async def segment_rules(self, segment_id: str | None = None) -> list[tuple[str, Any]]:
        return [(s, rule) for s, rule in sorted(self.rows.segments.items()) if segment_id in (None, s)]

    async def lock_customers(self, customer_ids: list[str]) -> None:
        assert not set(customer_ids) & self.rows.held, "would wait for a row an event batch holds"

    async def apply_rule(self, segment_id: str, compiled: Any, currency: str,
                         customer_ids: list[str] | None = None) -> list[MembershipChange]:
        rule = parse_rule(self.rows.segments[segment_id])
        among = set(self.rows.customers) if customer_ids is None else set(customer_ids)
        matched = {c for c in among if c in self.rows.customers and not self.rows.customers[c].erased
                   and _matches(rule, self.rows.customers[c])}
        members = {c for s, c in self.rows.members if s == segment_id}
        entered = sorted(matched - members)
        exited = sorted((members & among) - matched)
        self.rows.members |= {(segment_id, c) for c in entered}
        self.rows.members -= {(segment_id, c) for c in exited}
        return [MembershipChange(c, True) for c in entered] + [MembershipChange(c, False) for c in exited]

    async def segment_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for c in self.rows.customers.values():
            if c.rfm is not None and not c.erased:
                sizes[f"rfm:{c.rfm[3]}"] = sizes.get(f"rfm:{c.rfm[3]}", 0) + 1
        for s in self.rows.segments:
            sizes[s] = sum(1 for m, _ in self.rows.members if m == s)
        return sizes

    async def customer_count(self) -> int:
        return len(self.rows.customers)

    async def try_lock_refresh(self) -> bool:
        if self.rows.refresh_locked:
            return False
        self.rows.refresh_locked = True  # released when the guard unit ends (FakeSegmentWorld.units)
        return True

    async def snapshot_rfm(self, currency: str) -> int:
        self.rows.snapshot = expected_rfm(list(self.rows.customers.values()))
        return len(self.rows.snapshot)

    async def drop_rfm_snapshot(self) -> None:
        self.rows.snapshot = None

    async def next_chunk(self, after: str, size: int) -> list[str]:
        return sorted(c for c in self.rows.customers if c > after)[:size]

    async def lock_free(self, customer_ids: list[str]) -> list[str]:
        return sorted(c for c in customer_ids if c in self.rows.customers and c not in self.rows.held)

    async def write_rfm(self, customer_ids: list[str], at: datetime) -> list[RfmChange]:
        assert self.rows.snapshot is not None
        renamed = []
        for c in customer_ids:
            scores = self.rows.snapshot.get(c)
            customer = self.rows.customers[c]
            if scores is None or scores == customer.rfm:
                continue
            old = customer.rfm[3] if customer.rfm else None
            customer.rfm = scores
            if old != scores[3]:
                renamed.append(RfmChange(c, old, scores[3]))
        return renamed


class FakeSegmentWorld:
    def __init__(self) -> None:
        self.rows = SegmentRows()
        self.published: list[Any] = []

    def units(self):
        @asynccontextmanager
        async def open_unit() -> AsyncIterator[FakeUnitOfWork[FakeSegmentRepository]]:
            repo = FakeSegmentRepository(self.rows)
            uow = FakeUnitOfWork(repo)
            locked_before = self.rows.refresh_locked
            try:
                yield uow
            finally:
                self.published.extend(uow.published)
                if not locked_before:  # the job's lock is this unit's transaction's
                    self.rows.refresh_locked = False
        return open_unit

    async def seed(self, customers: list[Shopper]) -> None:
        for c in customers:
            self.rows.customers[c.customer_id] = copy.deepcopy(c)

    async def define_segment(self, segment_id: str, rule: dict) -> None:
        self.rows.segments[segment_id] = rule

    async def members(self, segment_id: str) -> set[str]:
        return {c for s, c in self.rows.members if s == segment_id}

    async def rfm(self) -> dict[str, tuple[int, int, int, str]]:
        return {c.customer_id: c.rfm for c in self.rows.customers.values() if c.rfm is not None}

    async def events(self) -> list[tuple[str, str, bool]]:
        """(customer_id, segment_id, entered) of the segment events committed so far, in order."""
        return [(e.data["customer_id"], e.data["segment_id"], e.type.endswith("entered")) for e in self.published]

    @asynccontextmanager
    async def holding(self, customer_ids: list[str]) -> AsyncIterator[None]:
        self.rows.held |= set(customer_ids)
        try:
            yield
        finally:
            self.rows.held -= set(customer_ids)

    @asynccontextmanager
    async def refresh_running(self) -> AsyncIterator[None]:
        self.rows.refresh_locked = True
        try:
            yield
        finally:
            self.rows.refresh_locked = False
