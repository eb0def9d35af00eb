"""An in-memory ``LoyaltyRepository``: rows in dicts, only the methods the use cases call.

It behaves like the SQL in ``crm_loyalty/repository/`` (locks are moot in one task): each unit of
work gets fresh ``Member`` and ``Lot`` objects built from the rows, and ``save_members`` writes back
what changed and returns the events to publish, as the real one does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from crm_loyalty.domain.earning import months_later
from crm_loyalty.domain.events import movement_events, tier_changed
from crm_loyalty.domain.ledger import Book, Lot
from crm_loyalty.domain.members import Member, Spent
from crm_loyalty.domain.programme import DEFAULT_PROGRAMME, Programme
from crm_shared.events.envelope import CloudEvent
from crm_shared.merges import MergeRecord

from tests.unit.fakes import FakeUnitOfWork

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ERASED_TEXT = "(erased)"


class FakeLoyaltyRepository:
    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.lots: dict[int, dict[str, Any]] = {}
        self.ledger: list[dict[str, Any]] = []
        self.orders: dict[str, dict[str, Any]] = {}
        self.redemptions: dict[str, dict[str, Any]] = {}
        self.redemption_lots: dict[tuple[str, int], dict[str, int]] = {}
        self.programmes: dict[int, dict[str, Any]] = {}
        self.win_backs: dict[tuple[str, datetime], dict[str, Any]] = {}
        self.allowances: dict[tuple[str, datetime], int] = {}
        self.erased: dict[str, datetime] = {}
        self.merges: dict[int, dict[str, Any]] = {}
        self.job_locks_held: set[str] = set()  # jobs "another replica" runs now
        self._lot_ids = itertools.count(1)
        self._entry_ids = itertools.count(1)
        self._merge_ids = itertools.count(1)

    # -- accounts and books ------------------------------------------------------------------------

    async def lock_members(self, customer_ids: Iterable[str], *, entry_tier: str, at: datetime,
                           create: bool = True, with_lots: bool = False) -> dict[str, Member]:
        ids = sorted(set(customer_ids))
        created = []
        if create:
            for customer_id in ids:
                if customer_id not in self.accounts:
                    self.accounts[customer_id] = {
                        "tier": entry_tier, "tier_since": at, "below_tier_since": None, "available": 0,
                        "pending": 0, "debt": 0, "lifetime_earned": 0, "birthday": None, "birthday_bonus_year": None,
                        "erased_at": self.erased.get(customer_id), "birthday_greeted_year": None}
                    created.append(customer_id)
        members = {}
        for customer_id in ids:
            row = self.accounts.get(customer_id)
            if row is None:
                continue
            members[customer_id] = Member(
                Book(customer_id, row["available"], row["pending"], row["debt"], row["lifetime_earned"]),
                row["tier"], row["tier_since"], row["below_tier_since"], row["birthday"], row["birthday_bonus_year"],
                row["erased_at"], row["birthday_greeted_year"])
        for customer_id in created:
            members[customer_id].events.append(tier_changed(customer_id, None, entry_tier, at))
        if with_lots:
            await self.load_lots(members.values())
        return members

    @staticmethod
    def _lot(lot_id: int, row: dict[str, Any]) -> Lot:
        return Lot(row["kind"], row["points"], row["remaining"], row["state"], row["business_at"],
                   row["available_at"], row["expires_at"], order_id=row["order_id"], lot_id=lot_id)

    async def load_lots(self, members: Iterable[Member]) -> None:
        by_id = {m.customer_id: m for m in members if m.book.lots is None}
        for member in by_id.values():
            member.book.lots = []
        for lot_id, row in sorted(self.lots.items()):
            if row["customer_id"] in by_id and row["state"] != "closed":
                by_id[row["customer_id"]].book.lots.append(self._lot(lot_id, row))

    async def lots_by_id(self, members: dict[str, Member], lot_ids: Sequence[int]) -> dict[int, Lot]:
        known = {lot.lot_id: lot for m in members.values() for lot in m.book.lots or () if lot.lot_id is not None}
        for lot_id in lot_ids:
            row = self.lots.get(lot_id)
            if lot_id not in known and row is not None and row["customer_id"] in members:
                lot = known[lot_id] = self._lot(lot_id, row)
                book = members[row["customer_id"]].book
                book.lots = [*(book.lots or []), lot]
        return {i: known[i] for i in lot_ids if i in known}

    async def save_members(self, members: Iterable[Member]) -> list[CloudEvent]:
        members = list(members)
        events: list[CloudEvent] = []
        for member in members:
            book = member.book
            for lot in book.new_lots:
                lot.lot_id, lot.changed = next(self._lot_ids), False
                self.lots[lot.lot_id] = {"customer_id": member.customer_id, "kind": lot.kind,
                                         "order_id": lot.order_id, "points": lot.points, "remaining": lot.remaining,
                                         "state": lot.state, "business_at": lot.business_at,
                                         "available_at": lot.available_at, "expires_at": lot.expires_at,
                                         "expiry_noticed_at": None}
            for lot in book.lots or ():
                if lot.changed and lot.lot_id is not None:
                    self.lots[lot.lot_id].update(remaining=lot.remaining, state=lot.state, expires_at=lot.expires_at)
                    lot.changed = False
            for mv in book.movements:
                self.ledger.append({
                    "entry_id": next(self._entry_ids), "customer_id": member.customer_id, "kind": mv.kind,
                    "points": mv.points, "available_delta": mv.available, "pending_delta": mv.pending,
                    "debt_delta": mv.debt, "reason": mv.reason, "order_id": mv.order_id,
                    "redemption_id": mv.redemption_id, "lot_id": mv.lot.lot_id if mv.lot else None,
                    "actor": mv.actor, "ticket_id": mv.ticket_id, "campaign": mv.campaign, "event_id": mv.event_id,
                    "business_at": mv.business_at, "recorded_at": datetime.now(UTC)})
            self.accounts[member.customer_id].update(
                available=book.available, pending=book.pending, debt=book.debt, lifetime_earned=book.lifetime_earned,
                tier=member.tier, tier_since=member.tier_since, below_tier_since=member.below_tier_since,
                birthday_bonus_year=member.birthday_bonus_year, birthday_greeted_year=member.birthday_greeted_year)
            events.extend(movement_events(book, traceparent=member.traceparent))
            events.extend(member.events)
            book.movements.clear()
            book.new_lots.clear()
            member.events.clear()
        return events

    async def set_birthdays(self, birthdays: dict[str, date]) -> None:
        for customer_id, birthday in birthdays.items():
            row = self.accounts.get(customer_id)
            if row is not None and row["erased_at"] is None:
                row["birthday"] = birthday

    async def use_agent_allowance(self, actor: str, period_start: datetime, points: int, limit: int) -> int | None:
        total = self.allowances.get((actor, period_start), 0) + points
        if total > limit:
            return None
        self.allowances[(actor, period_start)] = total
        return total

    async def agent_usage(self, actor: str, period_start: datetime) -> int:
        return self.allowances.get((actor, period_start), 0)

    async def erase(self, erased_at: dict[str, datetime]) -> list[str]:
        for customer_id, at in erased_at.items():
            self.erased.setdefault(customer_id, at)
            row = self.accounts.get(customer_id)
            if row is not None:
                row["birthday"] = None
                row["erased_at"] = row["erased_at"] or self.erased[customer_id]
        for entry in self.ledger:
            if entry["customer_id"] in erased_at and entry["actor"] is not None:
                entry["reason"] = ERASED_TEXT
        for redemption in self.redemptions.values():
            if redemption["customer_id"] in erased_at:
                redemption["reason"] = None
        return list(erased_at)

    # -- orders, spent points, win-backs -----------------------------------------------------------

    async def known_orders(self, order_ids: Sequence[str]) -> set[str]:
        return {o for o in order_ids if o in self.orders}

    async def insert_paid_orders(self, rows: dict[str, list[Any]]) -> None:
        for i, order_id in enumerate(rows.get("order_ids", ())):
            self.orders.setdefault(order_id, {
                "order_id": order_id, "customer_id": rows["customer_ids"][i], "status": rows["statuses"][i],
                "currency": rows["currencies"][i], "total_amount": rows["totals"][i],
                "points_value": rows["points_values"][i], "refunded_amount": Decimal(0),
                "paid_at": rows["paid_ats"][i], "earned_points": rows["earned"][i], "reversed_points": 0,
                "lines": rows["lines"][i], "programme_version": rows["versions"][i], "tier": rows["tiers"][i]})

    async def complete_orders(self, order_ids: Sequence[str]) -> None:
        for order_id in order_ids:
            if self.orders.get(order_id, {}).get("status") == "paid":
                self.orders[order_id]["status"] = "completed"

    async def pending_lots_of_orders(self, order_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        return {row["order_id"]: (lot_id, row["customer_id"]) for lot_id, row in self.lots.items()
                if row["order_id"] in order_ids and row["kind"] == "earn" and row["state"] == "pending"}

    async def orders_for_update(self, order_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        keys = ("order_id", "customer_id", "status", "total_amount", "refunded_amount", "earned_points",
                "reversed_points")
        return {o: {**{k: self.orders[o][k] for k in keys}, "lines": [dict(line) for line in self.orders[o]["lines"]]}
                for o in order_ids if o in self.orders}

    async def save_order(self, order: dict[str, Any], currency: str) -> None:
        stored = self.orders.setdefault(order["order_id"], {
            "order_id": order["order_id"], "customer_id": order["customer_id"], "currency": currency,
            "total_amount": order["total_amount"], "points_value": Decimal(0), "paid_at": None, "earned_points": 0,
            "programme_version": None, "tier": None})
        stored.update(status=order["status"], refunded_amount=order["refunded_amount"],
                      reversed_points=order["reversed_points"], lines=order["lines"])

    async def order_known(self, order_id: str) -> bool:
        return order_id in self.orders

    async def rolling_spend(self, customer_ids: Sequence[str], programme: Programme,
                            until: datetime) -> dict[str, tuple[Decimal, int]]:
        since = months_later(until, -programme.tiers.window_months)
        result = {c: (Decimal(0), 0) for c in customer_ids}
        for order in self.orders.values():
            if (order["customer_id"] in result and order["currency"] == programme.tiers.currency
                    and order["paid_at"] is not None and order["status"] != "cancelled"
                    and since < order["paid_at"] <= until):
                spend, count = result[order["customer_id"]]
                result[order["customer_id"]] = (spend + order["total_amount"] - order["refunded_amount"],
                                                count + (order["refunded_amount"] < order["total_amount"]))
        return result

    async def last_win_backs(self, customer_ids: Sequence[str]) -> dict[str, datetime]:
        last: dict[str, datetime] = {}
        for customer_id, at in self.win_backs:
            if customer_id in customer_ids:
                last[customer_id] = max(at, last.get(customer_id, at))
        return last

    async def record_win_back(self, customer_id: str, at: datetime, reward: dict[str, Any]) -> None:
        self.win_backs.setdefault((customer_id, at), reward)

    # -- coupons (none in memory: the scenarios here send no coupon codes; tests/service/loyalty
    # test_loyalty_coupons.py drives them on the real database) ---------------------------------

    async def applied_uses_of_orders(self, order_ids: Sequence[str]) -> list[dict[str, Any]]:
        return []

    async def discounts_on_orders(self, pairs: Iterable[tuple[str, str]], statuses: Sequence[str]
                                  ) -> dict[str, Spent]:
        pairs = set(pairs)
        return await self.spent_of([rid for rid, r in self.redemptions.items()
                                    if (r["order_id"], r["customer_id"]) in pairs and r["kind"] == "order_discount"
                                    and r["status"] in statuses])

    async def spent_of(self, redemption_ids: Sequence[str]) -> dict[str, Spent]:
        spent = {}
        for rid in sorted(redemption_ids, key=lambda i: (self.redemptions[i]["created_at"], i)):
            r = self.redemptions[rid]
            spent[rid] = Spent(rid, r["customer_id"], r["order_id"], r["points"], r["points_returned"], r["status"],
                               r["currency"], r["money_value"],
                               [(lot_id, row["points"] - row["returned"])
                                for (owner, lot_id), row in sorted(self.redemption_lots.items()) if owner == rid])
        return spent

    async def record_given_back(self, spent: Spent, points: int, restored: Sequence[tuple[Lot, int]], *,
                                void_reason: str | None = None, at: datetime | None = None) -> None:
        r = self.redemptions[spent.redemption_id]
        r["points_returned"] += points
        if void_reason:
            r.update(status="voided", resolved_at=at, void_reason=void_reason)
        for lot, amount in restored:
            if lot.lot_id is not None and (spent.redemption_id, lot.lot_id) in self.redemption_lots:
                self.redemption_lots[(spent.redemption_id, lot.lot_id)]["returned"] += amount
        spent.returned += points
        if void_reason:
            spent.status = "voided"
        back = {lot.lot_id: amount for lot, amount in restored if lot.lot_id is not None}
        spent.lots = [(lot_id, left - back.get(lot_id, 0)) for lot_id, left in spent.lots]

    async def apply_discounts(self, redemption_ids: Sequence[str], at: datetime) -> None:
        for rid in redemption_ids:
            if self.redemptions[rid]["status"] == "held":
                self.redemptions[rid].update(status="applied", resolved_at=at)

    async def insert_redemption(self, redemption: dict[str, Any], taken: Sequence[tuple[Lot, int]]) -> None:
        self.redemptions[redemption["redemption_id"]] = {**redemption, "points_returned": 0, "void_reason": None}
        for lot, points in taken:
            self.redemption_lots[(redemption["redemption_id"], lot.lot_id)] = {"points": points, "returned": 0}

    # -- the programme and the jobs' scans ---------------------------------------------------------

    async def seed_programme(self, config_json: str) -> None:
        import orjson

        self.programmes.setdefault(1, {"version": 1, "config": orjson.loads(config_json), "effective_from": EPOCH,
                                       "created_by": "system", "note": "the default programme",
                                       "created_at": datetime.now(UTC)})

    async def programme_versions(self) -> list[tuple[int, datetime]]:
        return [(v, row["effective_from"]) for v, row in sorted(self.programmes.items())]

    async def programme_configs(self, versions: list[int]) -> dict[int, dict[str, Any]]:
        return {v: self.programmes[v]["config"] for v in versions}

    async def latest_programmes(self, limit: int) -> list[dict[str, Any]]:
        return [dict(row) for _, row in sorted(self.programmes.items(), reverse=True)[:limit]]

    async def lock_programme(self) -> None:
        """Nothing to do in memory: one scenario at a time, no concurrent transaction to isolate from
        (the service tier runs the same scenarios on PostgreSQL, where this statement matters)."""

    async def add_programme_version(self, config_json: str, *, at: datetime, actor: str, note: str | None
                                    ) -> dict[str, Any]:
        import orjson

        version = max(self.programmes) + 1
        self.programmes[version] = {"version": version, "config": orjson.loads(config_json), "effective_from": at,
                                    "created_by": actor, "note": note, "created_at": at}
        return dict(self.programmes[version])

    async def try_job_lock(self, job: str) -> bool:
        return job not in self.job_locks_held

    async def members_with_releases_due(self, as_of: datetime, limit: int) -> list[str]:
        return sorted({r["customer_id"] for r in self.lots.values()
                       if r["state"] == "pending" and r["available_at"] <= as_of})[:limit]

    async def members_with_expiries_due(self, as_of: datetime, limit: int) -> list[str]:
        return sorted({r["customer_id"] for r in self.lots.values()
                       if r["state"] == "available" and r["expires_at"] <= as_of and r["remaining"] > 0})[:limit]

    async def expiry_notices_due(self, as_of: datetime, horizon: datetime, limit: int
                                 ) -> list[tuple[str, int, datetime, list[int]]]:
        due: dict[str, list[int]] = {}
        for lot_id, r in sorted(self.lots.items()):
            if (r["state"] == "available" and r["remaining"] > 0 and r["expiry_noticed_at"] is None
                    and as_of < r["expires_at"] <= horizon and r["customer_id"] not in self.erased):
                due.setdefault(r["customer_id"], []).append(lot_id)
        return [(c, sum(self.lots[i]["remaining"] for i in ids), min(self.lots[i]["expires_at"] for i in ids), ids)
                for c, ids in sorted(due.items())][:limit]

    async def mark_noticed(self, lot_ids: list[int], as_of: datetime) -> None:
        for lot_id in lot_ids:
            self.lots[lot_id]["expiry_noticed_at"] = as_of

    async def members_above(self, entry_tier: str, after: str, limit: int) -> list[str]:
        return sorted(c for c, row in self.accounts.items() if row["tier"] != entry_tier and c > after)[:limit]

    async def birthdays_due(self, month: int, year: int, after: str, limit: int) -> list[str]:
        return sorted(c for c, r in self.accounts.items()
                      if r["birthday"] is not None and r["erased_at"] is None and r["birthday"].month == month
                      and ((r["birthday_greeted_year"] or 0) < year or (r["birthday_bonus_year"] or 0) < year)
                      and c > after)[:limit]

    async def stale_holds(self, cutoff: datetime, limit: int) -> list[tuple[str, str, str | None, bool]]:
        return sorted((rid, r["customer_id"], r["order_id"], r["order_id"] in self.orders)
                      for rid, r in self.redemptions.items()
                      if r["status"] == "held" and (r["created_at"] <= cutoff or r["order_id"] in self.orders)
                      )[:limit]

    # -- merges ------------------------------------------------------------------------------------

    async def claim_merge(self, *, survivor: str, duplicate: str, at: datetime, event_id: str) -> int | None:
        if survivor == duplicate or any(m["duplicate_id"] == duplicate and m["unmerged_at"] is None
                                        for m in self.merges.values()):
            return None
        merge_id = next(self._merge_ids)
        self.merges[merge_id] = {"survivor_id": survivor, "duplicate_id": duplicate, "merged_at": at,
                                 "event_id": event_id, "moved": {}, "unmerged_at": None}
        return merge_id

    async def set_moved(self, merge_id: int, moved: dict[str, Any]) -> None:
        self.merges[merge_id]["moved"] = moved

    async def lock_merge_in_force(self, *, survivor: str, duplicate: str) -> MergeRecord | None:
        for merge_id, m in self.merges.items():
            if m["survivor_id"] == survivor and m["duplicate_id"] == duplicate and m["unmerged_at"] is None:
                return MergeRecord(merge_id, survivor, duplicate, m["merged_at"], m["moved"])
        return None

    async def close_merge(self, merge_id: int, at: datetime) -> None:
        self.merges[merge_id]["unmerged_at"] = at

    async def ever_merged(self, pairs: Iterable[tuple[str, str]]) -> set[frozenset[str]]:
        wanted = {frozenset(p) for p in pairs}
        return {frozenset((m["survivor_id"], m["duplicate_id"])) for m in self.merges.values()} & wanted

    async def move_everything(self, *, duplicate: str, survivor: str) -> dict[str, list[Any]]:
        moved: dict[str, list[Any]] = {}
        for name, table in (("lots", self.lots), ("orders", self.orders), ("redemptions", self.redemptions)):
            moved[name] = sorted(k for k, row in table.items() if row["customer_id"] == duplicate)
            for k in moved[name]:
                table[k]["customer_id"] = survivor
        return moved

    async def move_back(self, moved: dict[str, list[Any]], *, survivor: str, duplicate: str) -> None:
        for name, table in (("lots", self.lots), ("orders", self.orders), ("redemptions", self.redemptions)):
            for k in moved[name]:
                if table[k]["customer_id"] == survivor:
                    table[k]["customer_id"] = duplicate

    async def last_ledger_entry(self, customer_id: str) -> int:
        return max((e["entry_id"] for e in self.ledger if e["customer_id"] == customer_id), default=0)

    async def duplicates_own_movements(self, *, survivor: str, since: int, orders: Sequence[str],
                                       lots: Sequence[int]) -> tuple[int, int]:
        own = [e for e in self.ledger if e["customer_id"] == survivor and e["entry_id"] > since
               and ((e["kind"] in ("reverse", "refund_of_spent") and e["order_id"] in orders)
                    or (e["kind"] == "expire" and e["lot_id"] in lots))]
        return sum(e["points"] for e in own), sum(e["points"] for e in own if e["kind"] == "reverse")

    async def order_owners(self, order_ids: Sequence[str]) -> dict[str, str]:
        return {o: self.orders[o]["customer_id"] for o in order_ids if o in self.orders}

    # -- reads -------------------------------------------------------------------------------------

    async def account_view(self, customer_id: str, horizon: datetime) -> dict[str, Any] | None:
        row = self.accounts.get(customer_id)
        if row is None:
            return None
        expiring = sum(r["remaining"] for r in self.lots.values() if r["customer_id"] == customer_id
                       and r["state"] == "available" and r["expires_at"] <= horizon)
        return {"customer_id": customer_id, **{k: row[k] for k in (
            "tier", "tier_since", "below_tier_since", "available", "pending", "debt", "lifetime_earned")},
            "expiring_30d": expiring}

    async def expiries(self, customer_id: str, limit: int) -> list[tuple[datetime, int]]:
        by_date: dict[datetime, int] = {}
        for r in self.lots.values():
            if r["customer_id"] == customer_id and r["state"] == "available" and r["remaining"] > 0:
                by_date[r["expires_at"]] = by_date.get(r["expires_at"], 0) + r["remaining"]
        return sorted(by_date.items())[:limit]

    async def ledger_page(self, customer_id: str, *, before: int, kind: str | None, limit: int
                          ) -> list[dict[str, Any]]:
        rows = [e for e in reversed(self.ledger) if e["customer_id"] == customer_id and e["entry_id"] < before
                and (kind is None or e["kind"] == kind)]
        return [dict(e) for e in rows[:limit]]

    async def balance_as_of(self, customer_id: str, as_of: datetime) -> dict[str, Any]:
        rows = [e for e in self.ledger if e["customer_id"] == customer_id and e["business_at"] <= as_of]
        return {"known": customer_id in self.accounts, "available": sum(e["available_delta"] for e in rows),
                "pending": sum(e["pending_delta"] for e in rows), "debt": sum(e["debt_delta"] for e in rows)}

    async def redemptions_of(self, customer_id: str, limit: int) -> list[dict[str, Any]]:
        rows = sorted((r for r in self.redemptions.values() if r["customer_id"] == customer_id),
                      key=lambda r: r["created_at"], reverse=True)
        return [dict(r) for r in rows[:limit]]

    async def last_entry_id(self, customer_id: str) -> int | None:
        return max((e["entry_id"] for e in self.ledger if e["customer_id"] == customer_id), default=None)


def new_unit(repo: FakeLoyaltyRepository | None = None) -> FakeUnitOfWork[FakeLoyaltyRepository]:
    """A fake unit of work on a repository holding the default programme (version 1)."""
    repo = repo or FakeLoyaltyRepository()
    if not repo.programmes:
        repo.programmes[1] = {"version": 1, "config": DEFAULT_PROGRAMME.model_dump(mode="json"),
                              "effective_from": EPOCH, "created_by": "system", "note": "the default programme",
                              "created_at": EPOCH}
    return FakeUnitOfWork(repo)


def opener(uow: FakeUnitOfWork[FakeLoyaltyRepository]):
    """``open_uow`` for the ledger jobs: every chunk gets the same fake unit of work."""
    @asynccontextmanager
    async def open_uow():
        yield uow
    return open_uow
