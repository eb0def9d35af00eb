"""An in-memory ``TicketsRepository`` for the tickets use cases: rows in dicts, only the methods the
use cases of tests/unit/tickets call. It stands in for repository/, whose SQL the service tier runs
with the same scenarios (tests/service/tickets/test_tickets_usecases.py)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from crm_shared.merges import MergeRecord

from tests.unit.fakes import FakeUnitOfWork

ACTIVE = ("new", "open", "pending_customer")
TICKET_DEFAULTS = {
    "order_id": None, "items": [], "category": None, "subcategory": None, "description": "",
    "priority_overridden": False, "status": "new", "group_id": None, "assignee": None, "tier": None,
    "churn_level": None, "root_cause": None, "first_response_at": None, "resolved_at": None, "closed_at": None,
    "reopened_count": 0, "first_response_due_at": None, "first_response_warn_at": None, "resolution_due_at": None,
    "resolution_warn_at": None, "resolution_left_s": None, "fr_warning_sent_at": None, "fr_breached_at": None,
    "res_warning_sent_at": None, "res_breached_at": None, "updated_at": None,
}
# (kind, target) → (marked column, moment column, due column, extra condition)
MARKS = {
    ("sla_warning", "first_response"): ("fr_warning_sent_at", "first_response_warn_at", "first_response_due_at",
                                        lambda t, now: t.first_response_at is None
                                        and t.first_response_due_at > now),
    ("sla_breached", "first_response"): ("fr_breached_at", "first_response_due_at", "first_response_due_at",
                                         lambda t, now: t.first_response_at is None),
    ("sla_warning", "resolution"): ("res_warning_sent_at", "resolution_warn_at", "resolution_due_at",
                                    lambda t, now: t.resolution_due_at is not None and t.resolution_due_at > now),
    ("sla_breached", "resolution"): ("res_breached_at", "resolution_due_at", "resolution_due_at",
                                     lambda t, now: True),
}


class Row(dict):
    """A row read by attribute, as SQLAlchemy's are; a copy, so a later change does not show through."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class InMemoryTicketsRepository:
    def __init__(self) -> None:
        self.tickets: dict[str, dict[str, Any]] = {}
        self.history_rows: list[dict[str, Any]] = []
        self.comment_rows: list[dict[str, Any]] = []
        self.attachment_rows: list[dict[str, Any]] = []
        self.csat: dict[str, dict[str, Any]] = {}
        self.levels: dict[str, dict[str, Any]] = {}
        self.groups_by_id: dict[str, dict[str, Any]] = {}
        self.agents_by_id: dict[str, dict[str, Any]] = {}
        self.policies: dict[int, dict[str, Any]] = {}
        self.erased: dict[str, datetime] = {}
        self.merges: list[dict[str, Any]] = []
        self.metric_totals: dict[tuple[str, str], int] = {}

    # -- tickets ------------------------------------------------------------------------------------

    async def load_ticket(self, ticket_id: str, *, lock: bool = False) -> Row | None:
        found = self.tickets.get(ticket_id)
        return Row(copy.deepcopy(found)) if found is not None else None

    async def insert_ticket(self, values: dict[str, Any]) -> Row:
        row = {**TICKET_DEFAULTS, **copy.deepcopy(values)}
        self.tickets[row["ticket_id"]] = row
        return Row(copy.deepcopy(row))

    async def update_ticket(self, ticket_id: str, values: dict[str, Any]) -> Row:
        self.tickets[ticket_id].update(copy.deepcopy(values))
        return Row(copy.deepcopy(self.tickets[ticket_id]))

    async def list_tickets(self, *, customer_id, statuses, assignee, group_id, priority, before_at, before_id,
                           limit, unassigned=False, due_before=None) -> list[Row]:
        def due_soon(t) -> bool:  # the repository's SQL: a clock still to stop, due before then
            return t["status"] in ("new", "open", "pending_customer") and (
                (t["first_response_at"] is None and t["first_response_due_at"] < due_before)
                or (t["resolved_at"] is None and t.get("resolution_left_s") is None
                    and t["resolution_due_at"] is not None and t["resolution_due_at"] < due_before))
        rows = [t for t in self.tickets.values()
                if (customer_id is None or t["customer_id"] == customer_id)
                and (not unassigned or t["assignee"] is None)
                and (due_before is None or due_soon(t))
                and (statuses is None or t["status"] in statuses)
                and (assignee is None or t["assignee"] == assignee)
                and (group_id is None or t["group_id"] == group_id)
                and (priority is None or t["priority"] == priority)
                and (t["created_at"], t["ticket_id"]) < (before_at, before_id)]
        rows.sort(key=lambda t: (t["created_at"], t["ticket_id"]), reverse=True)
        return [Row(copy.deepcopy(t)) for t in rows[:limit]]

    async def record_history(self, ticket_id: str, actor: str, action: str, changes: dict[str, Any],
                             at: datetime) -> None:
        self.history_rows.append({"ticket_id": ticket_id, "actor": actor, "action": action,
                                  "changes": copy.deepcopy(changes), "at": at})

    async def history(self, ticket_id: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in h.items() if k != "ticket_id"} for h in self.history_rows
                if h["ticket_id"] == ticket_id]

    # -- who the customer is -------------------------------------------------------------------------

    async def customer_levels(self, customer_id: str) -> tuple[str | None, str | None]:
        row = self.levels.get(customer_id)
        return (row.get("tier"), row.get("churn_level")) if row else (None, None)

    async def erased_among(self, customer_ids: list[str]) -> set[str]:
        return set(customer_ids) & set(self.erased)

    async def survivors_of(self, customer_ids: list[str]) -> dict[str, str]:
        resolved = {}
        for origin in customer_ids:
            current = origin
            for _ in range(8):
                step = next((m["survivor_id"] for m in self.merges
                             if m["duplicate_id"] == current and m["unmerged_at"] is None), None)
                if step is None:
                    break
                current = step
            if current != origin:
                resolved[origin] = current
        return resolved

    # -- queues and agents --------------------------------------------------------------------------

    async def group_for(self, category: str | None) -> str | None:
        matching = sorted(g for g, row in self.groups_by_id.items() if category in row["skills"])
        if matching:
            return matching[0]
        return "general" if "general" in self.groups_by_id else None

    async def lock_group(self, group_id: str) -> Row | None:
        group = self.groups_by_id.get(group_id)
        return Row(strategy=group["strategy"], last_agent=group.get("last_agent")) if group else None

    def _available(self, group_id: str) -> list[dict[str, Any]]:
        return sorted((a for a in self.agents_by_id.values() if a["available"] and group_id in a["groups"]),
                      key=lambda a: a["agent_id"])

    async def least_loaded_agent(self, group_id: str) -> str | None:
        agents = sorted(self._available(group_id), key=lambda a: (a["active_tickets"], a["agent_id"]))
        return agents[0]["agent_id"] if agents else None

    async def available_agents(self, group_id: str) -> list[str]:
        return [a["agent_id"] for a in self._available(group_id)]

    async def set_last_agent(self, group_id: str, agent: str) -> None:
        self.groups_by_id[group_id]["last_agent"] = agent

    async def change_load(self, agent: str, delta: int) -> None:
        if agent in self.agents_by_id:
            self.agents_by_id[agent]["active_tickets"] += delta
            assert self.agents_by_id[agent]["active_tickets"] >= 0, "CHECK (active_tickets >= 0)"

    async def agent_exists(self, agent_id: str) -> bool:
        return agent_id in self.agents_by_id

    # -- comments, attachments, ratings -------------------------------------------------------------

    async def insert_comment(self, comment: dict[str, Any]) -> None:
        self.comment_rows.append(dict(comment))

    async def comments(self, ticket_id: str, *, staff: bool) -> list[dict[str, Any]]:
        return sorted((dict(c) for c in self.comment_rows if c["ticket_id"] == ticket_id and (c["public"] or staff)),
                      key=lambda c: (c["created_at"], c["comment_id"]))

    async def insert_attachment(self, record: dict[str, Any]) -> None:
        self.attachment_rows.append(dict(record))

    async def attachments(self, ticket_id: str) -> list[dict[str, Any]]:
        return sorted((dict(a) for a in self.attachment_rows if a["ticket_id"] == ticket_id),
                      key=lambda a: a["created_at"])

    async def insert_csat(self, *, ticket_id, customer_id, score, comment, agent, group_id, at, recorded_by) -> bool:
        if ticket_id in self.csat:
            return False
        self.csat[ticket_id] = {"customer_id": customer_id, "score": score, "comment": comment, "agent": agent,
                                "group_id": group_id, "submitted_at": at, "recorded_by": recorded_by}
        return True

    # -- what other services tell ---------------------------------------------------------------------

    async def copy_levels(self, column: str, latest: dict[str, str]) -> None:
        for customer_id, value in latest.items():
            self.levels.setdefault(customer_id, {})[column] = value

    async def claim_follow_up(self, customer_id: str, *, at: datetime, key_tiers: list[str],
                              period_days: int) -> bool:
        row = self.levels.get(customer_id)
        if row is None or row.get("tier") not in key_tiers:
            return False
        last = row.get("follow_up_at")
        if last is not None and (at - last).days < period_days:
            return False
        row["follow_up_at"] = at
        return True

    async def record_erasures(self, erased_at: dict[str, datetime]) -> None:
        for customer_id, at in erased_at.items():
            self.erased.setdefault(customer_id, at)

    async def erase_texts(self, customer_ids: list[str]) -> None:
        mine = {t for t, row in self.tickets.items() if row["customer_id"] in customer_ids}
        for ticket_id in mine:
            self.tickets[ticket_id].update(subject="(erased)", description="")
        for comment in self.comment_rows:
            if comment["ticket_id"] in mine:
                comment["body"] = "(erased)"
        for rating in self.csat.values():
            if rating["customer_id"] in customer_ids:
                rating["comment"] = None
        self.attachment_rows = [a for a in self.attachment_rows if a["ticket_id"] not in mine]

    async def claim_merge(self, *, survivor: str, duplicate: str, at: datetime, event_id: str) -> int | None:
        if survivor == duplicate or any(m["duplicate_id"] == duplicate and m["unmerged_at"] is None
                                        for m in self.merges):
            return None
        self.merges.append({"merge_id": len(self.merges) + 1, "survivor_id": survivor, "duplicate_id": duplicate,
                            "merged_at": at, "event_id": event_id, "moved": {}, "unmerged_at": None})
        return len(self.merges)

    async def move_tickets(self, *, duplicate: str, survivor: str) -> dict[str, list[Any]]:
        moved = {"tickets": [], "csat": []}
        for ticket_id, row in self.tickets.items():
            if row["customer_id"] == duplicate:
                row["customer_id"] = survivor
                moved["tickets"].append(ticket_id)
        for ticket_id, rating in self.csat.items():
            if rating["customer_id"] == duplicate:
                rating["customer_id"] = survivor
                moved["csat"].append(ticket_id)
        return {name: sorted(ids) for name, ids in moved.items()}

    async def set_moved(self, merge_id: int, moved: dict[str, Any]) -> None:
        self.merges[merge_id - 1]["moved"] = moved

    async def lock_merge_in_force(self, *, survivor: str, duplicate: str) -> MergeRecord | None:
        for m in self.merges:
            if m["survivor_id"] == survivor and m["duplicate_id"] == duplicate and m["unmerged_at"] is None:
                return MergeRecord(m["merge_id"], survivor, duplicate, m["merged_at"], m["moved"])
        return None

    async def move_tickets_back(self, moved: dict[str, list[Any]], *, survivor: str, duplicate: str) -> None:
        for ticket_id in moved.get("tickets", []):
            if self.tickets[ticket_id]["customer_id"] == survivor:
                self.tickets[ticket_id]["customer_id"] = duplicate
        for ticket_id in moved.get("csat", []):
            if self.csat[ticket_id]["customer_id"] == survivor:
                self.csat[ticket_id]["customer_id"] = duplicate

    async def close_merge(self, merge_id: int, at: datetime) -> None:
        self.merges[merge_id - 1]["unmerged_at"] = at

    # -- policy, queues, agents -------------------------------------------------------------------------

    async def seed_policy(self, config_json: str) -> None:
        import orjson

        self.policies.setdefault(1, {"version": 1, "config": orjson.loads(config_json), "created_by": "system",
                                     "created_at": datetime.now().astimezone()})

    async def policy_version(self) -> int:
        return max(self.policies, default=0)

    async def policy_config(self, version: int) -> dict[str, Any] | None:
        found = self.policies.get(version)
        return copy.deepcopy(found["config"]) if found else None

    async def latest_policy(self) -> dict[str, Any]:
        return copy.deepcopy(self.policies[max(self.policies)])

    async def lock_policy(self) -> int | None:
        return max(self.policies, default=None)

    async def insert_policy(self, version: int, config_json: str, created_by: str) -> None:
        import orjson

        assert version not in self.policies, "PRIMARY KEY (version)"
        self.policies[version] = {"version": version, "config": orjson.loads(config_json), "created_by": created_by,
                                  "created_at": datetime.now().astimezone()}

    async def upsert_group(self, group: dict[str, Any]) -> None:
        last = self.groups_by_id.get(group["group_id"], {}).get("last_agent")
        self.groups_by_id[group["group_id"]] = {**group, "last_agent": last}

    async def groups(self) -> list[dict[str, Any]]:
        return [dict(self.groups_by_id[g]) for g in sorted(self.groups_by_id)]

    async def upsert_agent(self, agent: dict[str, Any]) -> None:
        load = self.agents_by_id.get(agent["agent_id"], {}).get("active_tickets", 0)
        self.agents_by_id[agent["agent_id"]] = {**agent, "active_tickets": load}

    async def agents(self) -> list[dict[str, Any]]:
        return [{**{k: v for k, v in a.items() if k != "active_tickets"}, "open_tickets": a["active_tickets"]}
                for _, a in sorted(self.agents_by_id.items())]

    async def set_availability(self, agent_id: str, available: bool) -> bool:
        if agent_id not in self.agents_by_id:
            return False
        self.agents_by_id[agent_id]["available"] = available
        return True

    # -- the SLA scan -------------------------------------------------------------------------------

    async def mark_sla(self, kind: str, target: str, now: datetime, limit: int) -> list[Row]:
        sent, moment, due, extra = MARKS[(kind, target)]
        due_rows = sorted((t for t in self.tickets.values()
                           if t["status"] in ACTIVE and t[sent] is None and t[moment] is not None
                           and t[moment] <= now and extra(Row(t), now)), key=lambda t: t[moment])[:limit]
        for t in due_rows:
            t[sent] = now
        return [Row(ticket_id=t["ticket_id"], customer_id=t["customer_id"], priority=t["priority"],
                    assignee=t["assignee"], due_at=t[due]) for t in due_rows]

    async def count_breaches(self, target: str, n: int) -> None:
        key = ("sla_breaches", target)
        self.metric_totals[key] = self.metric_totals.get(key, 0) + n


def fake_uow() -> FakeUnitOfWork[InMemoryTicketsRepository]:
    return FakeUnitOfWork(InMemoryTicketsRepository())
