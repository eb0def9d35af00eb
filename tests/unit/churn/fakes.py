"""An in-memory ChurnRepository: rows in dicts, only the methods the churn use cases call.

``load_history`` computes the features the way the repository's one statement does (the same
windows, the same as-of rules), so scenarios run alike here and on PostgreSQL
(tests/service/churn/test_usecases_on_postgres.py runs them on the real unit of work).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from crm_churn.domain.model import History
from crm_churn.repository.history import _history_from_rows, _timestamps
from crm_shared.merges import MergeRecord

from tests.unit.fakes import FakeUnitOfWork


@dataclass
class Order:
    customer_id: str
    paid_at: datetime
    currency: str
    total: Decimal
    refunded: Decimal = Decimal(0)
    cancelled_at: datetime | None = None


@dataclass
class Ticket:
    customer_id: str
    kind: str
    opened_at: datetime
    resolved_at: datetime | None = None
    breached_at: datetime | None = None


@dataclass
class FakeChurnRepository:
    orders: dict[str, Order] = field(default_factory=dict)
    activity: dict[tuple[str, date], int] = field(default_factory=dict)
    tickets: dict[str, Ticket] = field(default_factory=dict)
    csat: dict[str, tuple[str, int, datetime]] = field(default_factory=dict)  # ticket -> customer, score, at
    versions: dict[str, int] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    erased: dict[str, datetime] = field(default_factory=dict)
    merges: dict[int, dict[str, Any]] = field(default_factory=dict)
    refit_locked: bool = False
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # -- ingest --------------------------------------------------------------------------------
    async def record_paid_orders(self, order_ids, customer_ids, at, currencies, totals) -> None:
        for order_id, customer_id, paid_at, currency, total in zip(order_ids, customer_ids, at, currencies, totals,
                                                                    strict=True):
            self.orders.setdefault(order_id, Order(customer_id, paid_at, currency, Decimal(total)))

    async def record_cancelled_orders(self, order_ids, at) -> None:
        for order_id, when in zip(order_ids, at, strict=True):
            if order_id in self.orders and self.orders[order_id].cancelled_at is None:
                self.orders[order_id].cancelled_at = when

    async def record_refunds(self, order_ids, amounts) -> None:
        for order_id, amount in zip(order_ids, amounts, strict=True):
            if (order := self.orders.get(order_id)) is not None:
                order.refunded = min(order.total, order.refunded + Decimal(amount))

    async def add_activity(self, customer_ids, days, counts) -> None:
        for key, count in zip(zip(customer_ids, days, strict=True), counts, strict=True):
            self.activity[key] = self.activity.get(key, 0) + count

    async def record_tickets(self, change, ticket_ids, customer_ids, kinds, at) -> None:
        for ticket_id, customer_id, kind, when in zip(ticket_ids, customer_ids, kinds, at, strict=True):
            ticket = self.tickets.get(ticket_id)
            if ticket is None:
                ticket = self.tickets[ticket_id] = Ticket(customer_id, kind, when)
                if change == "opened":
                    continue
            if change == "resolved":
                ticket.resolved_at = ticket.resolved_at or when
            elif change == "reopened":
                ticket.resolved_at = None
            elif change == "breached":
                ticket.breached_at = ticket.breached_at or when

    async def record_ratings(self, ticket_ids, customer_ids, scores, at) -> None:
        for ticket_id, customer_id, score, when in zip(ticket_ids, customer_ids, scores, at, strict=True):
            self.csat.setdefault(ticket_id, (customer_id, score, when))

    # -- history -------------------------------------------------------------------------------
    async def history_changed(self, customer_ids: Sequence[str]) -> None:
        for customer_id in set(customer_ids):
            self.versions[customer_id] = self.versions.get(customer_id, 0) + 1

    async def load_history(self, as_of: datetime, ids: Sequence[str] | None = None) -> History:
        p = _timestamps(as_of)
        wanted = None if ids is None else set(ids)
        mine = [o for o in self.orders.values() if o.paid_at < as_of
                and (o.cancelled_at is None or o.cancelled_at >= as_of)
                and (wanted is None or o.customer_id in wanted)]
        by_customer: dict[str, list[tuple[str, Order]]] = {}
        for order_id, order in self.orders.items():
            if order in mine:
                by_customer.setdefault(order.customer_id, []).append((order_id, order))
        rows = []
        for customer_id in sorted(by_customer):
            placed = sorted(by_customer[customer_id], key=lambda x: (x[1].paid_at, x[0]), reverse=True)
            latest = placed[0][1]
            paid = [o.paid_at for _, o in placed]
            value = sum((o.total - o.refunded for _, o in placed
                         if o.paid_at >= p["d365"] and o.currency == latest.currency), Decimal(0))
            days = {day: n for (c, day), n in self.activity.items() if c == customer_id
                    and p["t90"] <= datetime.combine(day, time()) < p["t"]}

            def since(start: datetime, days=days) -> int:
                return sum(n for day, n in days.items() if datetime.combine(day, time()) >= start)
            tickets = [t for t in self.tickets.values() if t.customer_id == customer_id and t.opened_at < as_of]
            ratings = sorted((at, score) for c, score, at in self.csat.values() if c == customer_id and at < as_of)
            rows.append((
                customer_id, self.versions.get(customer_id, 0), len(placed), min(paid).timestamp(),
                max(paid).timestamp(), placed[1][1].paid_at.timestamp() if len(placed) > 1 else None,
                latest.currency, value, since(p["t7"]), since(p["t30"]), sum(days.values()),
                sum(days.values()) - since(p["t30"]),
                sum(1 for t in tickets if t.kind == "complaint" and t.opened_at >= p["d90"]),
                sum(1 for t in tickets if t.resolved_at is None or t.resolved_at >= as_of),
                sum(1 for t in tickets if t.breached_at is not None and p["d90"] <= t.breached_at < as_of),
                ratings[-1][1] if ratings else None))
        return _history_from_rows(as_of, rows)

    async def purchasers(self, start: datetime, end: datetime) -> set[str]:
        return {o.customer_id for o in self.orders.values() if start <= o.paid_at < end}

    async def customers_with_orders(self) -> list[str]:
        return sorted({o.customer_id for o in self.orders.values()})

    async def forget_scores(self, customer_ids: Sequence[str]) -> None:
        for customer_id in customer_ids:
            self.scores.pop(customer_id, None)

    async def repeatable_read(self) -> None:
        """Nothing to do in memory: one scenario at a time, no concurrent transaction to isolate from
        (the service tier runs the same scenarios on PostgreSQL, where this statement matters)."""

    # -- scores and models ---------------------------------------------------------------------
    async def upsert_scores(self, *, ids, scores, levels, p_alive, expected, one_time, value, at_risk, currency,
                            reasons, indicators, history_versions, version, at) -> list[tuple[str, str, str | None]]:
        written = []
        for i, customer_id in enumerate(ids):
            old = self.scores.get(customer_id)
            if old is not None and old["history_version"] > history_versions[i]:
                continue
            level = levels[i]
            changed_at = at if old is None or old["level"] != level else old["level_changed_at"]
            self.scores[customer_id] = {
                "customer_id": customer_id, "score": scores[i], "level": level,
                "previous_level": None if old is None else old["level"], "level_changed_at": changed_at,
                "p_alive": p_alive[i], "expected_orders_90d": expected[i], "one_time_buyer": one_time[i],
                "value_12m": round(Decimal(value[i]), 4), "value_at_risk": round(Decimal(at_risk[i]), 4),
                "currency": currency[i], "reasons": copy.deepcopy(reasons[i]),
                "indicators": copy.deepcopy(indicators[i]), "model_version": version,
                "history_version": history_versions[i], "scored_at": at}
            written.append((customer_id, level, self.scores[customer_id]["previous_level"]))
        return written

    async def score_of(self, customer_id: str) -> dict[str, Any] | None:
        score = self.scores.get(customer_id)
        return None if score is None else {k: v for k, v in score.items() if k != "history_version"}

    async def scores_page(self, *, level, sort, after, limit) -> list[dict[str, Any]]:
        rows = [s for s in self.scores.values() if level is None or s["level"] == level]
        if after is not None:
            rows = [s for s in rows if s[sort] < after[0] or (s[sort] == after[0] and s["customer_id"] > after[1])]
        rows.sort(key=lambda s: s["customer_id"])
        rows.sort(key=lambda s: s[sort], reverse=True)
        return [{k: v for k, v in s.items() if k != "history_version"} for s in rows[:limit]]

    async def latest_model_version(self) -> str | None:
        return self.models[-1]["version"] if self.models else None

    async def model_params(self, version: str) -> tuple[str, dict[str, Any]]:
        model = next(m for m in self.models if m["version"] == version)
        return model["kind"], copy.deepcopy(model["params"])

    async def latest_model(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.models[-1]) if self.models else None

    async def add_model(self, *, version, kind, params, report, at, duration_s, actor) -> None:
        self.models.append({"version": version, "kind": kind, "params": copy.deepcopy(params),
                            "report": copy.deepcopy(report), "trained_at": at, "duration_s": duration_s,
                            "created_by": actor})

    async def try_refit_lock(self) -> bool:
        if self.refit_locked:
            return False
        self.refit_locked = True
        return True

    async def release_refit_lock(self) -> None:
        self.refit_locked = False

    # -- merges and erasure --------------------------------------------------------------------
    async def claim_merge(self, *, survivor: str, duplicate: str, at: datetime, event_id: str) -> int | None:
        if survivor == duplicate or any(m["duplicate"] == duplicate and m["unmerged_at"] is None
                                        for m in self.merges.values()):
            return None
        merge_id = next(self._ids)
        self.merges[merge_id] = {"survivor": survivor, "duplicate": duplicate, "at": at, "moved": {},
                                 "unmerged_at": None}
        return merge_id

    async def set_moved(self, merge_id: int, moved: dict[str, Any]) -> None:
        self.merges[merge_id]["moved"] = copy.deepcopy(moved)

    async def lock_merge_in_force(self, *, survivor: str, duplicate: str) -> MergeRecord | None:
        for merge_id, m in self.merges.items():
            if m["survivor"] == survivor and m["duplicate"] == duplicate and m["unmerged_at"] is None:
                return MergeRecord(merge_id, survivor, duplicate, m["at"], copy.deepcopy(m["moved"]))
        return None

    async def close_merge(self, merge_id: int, at: datetime) -> None:
        self.merges[merge_id]["unmerged_at"] = at

    def _rows(self) -> dict[str, dict[str, Any]]:
        return {"orders": self.orders, "tickets": self.tickets, "csat": self.csat}

    @staticmethod
    def _owner(row: Any) -> str:
        return row[0] if isinstance(row, tuple) else row.customer_id

    @staticmethod
    def _owned_by(row: Any, customer_id: str) -> Any:
        if isinstance(row, tuple):
            return (customer_id, *row[1:])
        row.customer_id = customer_id
        return row

    async def move_history(self, *, duplicate: str, survivor: str) -> dict[str, Any]:
        moved: dict[str, Any] = {"activity": [[day.isoformat(), n] for (c, day), n in sorted(self.activity.items())
                                              if c == duplicate]}
        for day, n in [(date.fromisoformat(d), n) for d, n in moved["activity"]]:
            self.activity[(survivor, day)] = self.activity.get((survivor, day), 0) + n
            del self.activity[(duplicate, day)]
        for name, table in self._rows().items():
            keys = sorted(k for k, row in table.items() if self._owner(row) == duplicate)
            for key in keys:
                table[key] = self._owned_by(table[key], survivor)
            moved[name] = keys
        self.scores.pop(duplicate, None)
        self.versions.pop(duplicate, None)
        return moved

    async def move_history_back(self, moved: dict[str, Any], *, survivor: str, duplicate: str) -> None:
        for name, table in self._rows().items():
            for key in moved.get(name, []):
                if key in table and self._owner(table[key]) == survivor:
                    table[key] = self._owned_by(table[key], duplicate)
        for day_text, n in moved.get("activity", []):
            day = date.fromisoformat(day_text)
            if (survivor, day) in self.activity:
                left = self.activity[(survivor, day)] - n
                if left <= 0:
                    del self.activity[(survivor, day)]
                else:
                    self.activity[(survivor, day)] = left
            self.activity[(duplicate, day)] = self.activity.get((duplicate, day), 0) + n

    async def erased_among(self, customer_ids: Sequence[str]) -> set[str]:
        return set(customer_ids) & set(self.erased)

    async def erase(self, erased_at: Mapping[str, datetime]) -> None:
        for customer_id, at in erased_at.items():
            self.erased.setdefault(customer_id, at)
        ids = set(erased_at)
        for table in self._rows().values():
            for key in [k for k, row in table.items() if self._owner(row) in ids]:
                del table[key]
        for key in [k for k in self.activity if k[0] in ids]:
            del self.activity[key]
        for table in (self.scores, self.versions):
            for customer_id in ids & set(table):
                del table[customer_id]


def fake_units(repo: FakeChurnRepository):
    """``units()`` / ``units(read_only=True)`` for use cases working in several transactions:
    each opens a fake unit of work on the same rows (committing is counted, never undone)."""
    opened: list[FakeUnitOfWork[FakeChurnRepository]] = []

    @asynccontextmanager
    async def units(*, read_only: bool = False) -> AsyncIterator[FakeUnitOfWork[FakeChurnRepository]]:
        uow = FakeUnitOfWork(repo)
        opened.append(uow)
        yield uow

    units.opened = opened  # type: ignore[attr-defined]
    return units
