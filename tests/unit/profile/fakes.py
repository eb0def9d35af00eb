"""An in-memory ProfileRepository for the profile's use-case tests (rows in dicts).

Only the methods the use cases under test call; the same scenarios run on the real repository in
``tests/service/profile/test_usecases_on_postgres.py``, which keeps this fake honest.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from crm_profile.domain.changes import consent_changes, fold_changes
from crm_profile.domain.pii import PiiVault
from crm_profile.domain.records import (
    CustomerStats,
    GroupMember,
    IdentityChange,
    IdentityWrite,
    MergeCandidate,
    MergeInForce,
)

_PII = ("email", "phone", "name", "address", "birthday", "gender", "city")


def _new(customer_id: str) -> dict[str, Any]:
    return {"customer_id": customer_id, "email_bidx": None, "phone_bidx": None, "erased_at": None,
            "merged_into": None, "order_count": 0, "refunded_order_count": 0, "first_order_at": None,
            "last_order_at": None, "tags": [], "consents": {"email": None, "sms": None}, **dict.fromkeys(_PII)}


class InMemoryProfileRepository:
    def __init__(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.notes: list[dict[str, Any]] = []
        self.external_ids: dict[tuple[str, str], str] = {}
        self.merges: list[dict[str, Any]] = []
        self.privacy_requests: list[dict[str, Any]] = []
        self.segments: dict[str, dict[str, Any]] = {}
        self.refreshed: list[tuple[list[str] | None, str | None]] = []
        self.consent_history: list[Any] = []

    # customers and identity
    async def write_identities(self, vault: PiiVault, changes: list[IdentityChange]) -> IdentityWrite:
        current = {c: dict(row["consents"]) for c, row in self.customers.items()}
        recorded, _ = consent_changes(current, changes)
        for change in fold_changes(changes).values():
            row = self.customers.setdefault(change.customer_id, _new(change.customer_id))
            if row["erased_at"] is None:
                for name in _PII:
                    if getattr(change, name) is not None:
                        row[name] = getattr(change, name)
                for name in ("email", "phone"):
                    if getattr(change, name) is not None:
                        row[f"{name}_bidx"] = vault.index(name, getattr(change, name))
            if change.tags is not None:
                row["tags"] = list(change.tags)
            row["consents"] = current[change.customer_id]
        self.consent_history.extend(recorded)
        return IdentityWrite(await self.statistics_of(sorted({c.customer_id for c in changes})), recorded)

    async def live_customers_among(self, customer_ids: list[str]) -> set[str]:
        return {c for c in customer_ids if c in self.customers and self.customers[c]["erased_at"] is None}

    async def statistics_of(self, customer_ids: list[str]) -> list[CustomerStats]:
        return [CustomerStats(c, self.customers[c]["order_count"], self.customers[c]["first_order_at"],
                              self.customers[c]["last_order_at"]) for c in sorted(customer_ids) if c in self.customers]

    async def net_spend_of(self, customer_ids: list[str]) -> dict[str, dict[str, Decimal]]:
        return {}

    async def load_profile(self, vault: PiiVault, customer_id: str) -> dict[str, Any] | None:
        row = self.customers.get(customer_id)
        return None if row is None else dict(row)

    async def external_ids_of(self, vault: PiiVault, customer_id: str) -> dict[str, str]:
        return {kind: value for (c, kind), value in sorted(self.external_ids.items()) if c == customer_id}

    async def lock_for_edit(self, customer_id: str) -> tuple[Any, Any] | None:
        row = self.customers.get(customer_id)
        return None if row is None else (row["birthday"], row["erased_at"])

    async def customer_exists(self, customer_id: str) -> bool:
        return customer_id in self.customers

    async def erased_among(self, customer_ids: list[str]) -> set[str]:
        return {c for c in customer_ids if c in self.customers and self.customers[c]["erased_at"] is not None}

    async def set_external_ids(self, vault: PiiVault, customer_id: str, ids: dict[str, str], source: str) -> None:
        self.external_ids.update({(customer_id, kind): value for kind, value in ids.items()})

    async def add_note(self, note: dict[str, Any]) -> None:
        self.notes.append(dict(note))

    async def notes_of(self, customer_id: str, limit: int) -> list[dict[str, Any]]:
        mine = [n for n in self.notes if n["customer_id"] == customer_id]
        return sorted(mine, key=lambda n: n["created_at"], reverse=True)[:limit]

    # merges
    async def find_duplicates(self, customer_id: str) -> list[tuple[str, bool, bool]]:
        me = self.customers[customer_id]
        found = []
        for c, row in sorted(self.customers.items()):
            same = [row[f] is not None and row[f] == me[f] for f in ("email_bidx", "phone_bidx")]
            if c != customer_id and any(same) and row["erased_at"] is None and row["merged_into"] is None:
                found.append((c, *same))
        return found

    async def lock_pair(self, survivor: str, merged: str) -> dict[str, MergeCandidate]:
        return {c: MergeCandidate(*(self.customers[c][f] for f in MergeCandidate._fields))
                for c in sorted({survivor, merged}) if c in self.customers}

    async def merge(self, *, survivor: str, merged: str, identifier: str, reason: str, actor: str,
                    stats: dict[str, Any]) -> None:
        s, m = self.customers[survivor], self.customers[merged]
        fields = [f for f in _PII if s[f] is None and m[f] is not None]
        self.merges.append({"id": len(self.merges) + 1, "survivor": survivor, "merged": merged,
                            "identifier": identifier, "in_force": True,
                            "moved": {"fields": fields, "order_count": m["order_count"]}})
        for f in fields:
            s[f] = m[f]
        s["order_count"] += m["order_count"]
        m.update({**dict.fromkeys(_PII), "email_bidx": None, "phone_bidx": None, "order_count": 0,
                  "merged_into": survivor})

    async def merge_in_force(self, survivor: str, merged: str) -> MergeInForce | None:
        for journal in reversed(self.merges):
            if journal["survivor"] == survivor and journal["merged"] == merged and journal["in_force"]:
                return MergeInForce(journal["id"], journal["identifier"], journal["moved"])
        return None

    async def unmerge(self, *, survivor: str, merged: str, journal: MergeInForce, reason: str, actor: str,
                      at: datetime) -> None:
        s, m = self.customers[survivor], self.customers[merged]
        for f in journal.moved["fields"]:
            m[f], s[f] = s[f], None
        m[f"{journal.identifier}_bidx"] = s[f"{journal.identifier}_bidx"]
        m["order_count"], s["order_count"] = journal.moved["order_count"], s["order_count"] - journal.moved[
            "order_count"]
        m["merged_into"] = None
        self.merges[journal.id - 1]["in_force"] = False

    # erasure
    async def survivor_of(self, customer_id: str) -> str | None:
        current, seen = customer_id, set()
        while current in self.customers and current not in seen:
            seen.add(current)
            if self.customers[current]["merged_into"] is None:
                return current
            current = self.customers[current]["merged_into"]
        return None

    async def lock_erasure_group(self, survivor: str) -> list[GroupMember]:
        group, frontier = {survivor}, [survivor]
        while frontier:
            at = frontier.pop()
            for c, row in self.customers.items():
                if row["merged_into"] == at and c not in group:
                    group.add(c)
                    frontier.append(c)
        return [GroupMember(c, self.customers[c]["erased_at"], self.customers[c]["merged_into"]) for c in sorted(group)]

    async def erase_profiles(self, customer_ids: list[str], at: datetime) -> list[tuple[str, str]]:
        withdrawn = sorted((c, channel) for c in customer_ids
                           for channel, granted in self.customers[c]["consents"].items() if granted is not False)
        for c in customer_ids:
            row = self.customers[c]
            row["consents"] = {"email": False, "sms": False}
            row.update({**dict.fromkeys(_PII), "email_bidx": None, "phone_bidx": None, "tags": [],
                        "erased_at": row["erased_at"] or at})
        self.notes = [n for n in self.notes if n["customer_id"] not in customer_ids]
        return withdrawn

    async def record_privacy_request(self, **request: Any) -> None:
        self.privacy_requests.append(request)

    # segments
    # the segment refresh's statements (repository/segments.py), as the commands' re-evaluation uses them
    async def segment_rules(self, segment_id: str | None = None) -> list[tuple[str, Any]]:
        return [(sid, seg["rule"]) for sid, seg in sorted(self.segments.items()) if segment_id in (None, sid)]

    async def lock_customers(self, customer_ids: list[str]) -> None:
        """Nothing to do in memory: one scenario at a time, no concurrent transaction to isolate from
        (the service tier runs the same scenarios on PostgreSQL, where this statement matters)."""

    async def apply_rule(self, segment_id: str, compiled: Any, currency: str,
                         customer_ids: list[str] | None) -> list[Any]:
        """Records which customers a command had re-evaluated (membership itself is the service tier's)."""
        self.refreshed.append((customer_ids, segment_id))
        return []

    async def segment_sizes(self) -> dict[str, int]:
        return dict.fromkeys(self.segments, 0)

    async def segment_definitions(self) -> list[dict[str, Any]]:
        return [self.segments[s] for s in sorted(self.segments)]

    async def segment_definition(self, segment_id: str) -> dict[str, Any] | None:
        return self.segments.get(segment_id)

    async def create_segment(self, *, segment_id: str, name: str, description: str | None, rule: dict[str, Any],
                             created_by: str) -> bool:
        if segment_id in self.segments:
            return False
        self.segments[segment_id] = {"segment_id": segment_id, "name": name, "description": description,
                                     "rule": rule, "created_by": created_by, "updated_at": None}
        return True

    async def update_segment(self, *, segment_id: str, name: str, description: str | None,
                             rule: dict[str, Any]) -> bool:
        if segment_id not in self.segments:
            return False
        self.segments[segment_id].update(name=name, description=description, rule=rule)
        return True

    async def delete_segment(self, segment_id: str) -> bool:
        return self.segments.pop(segment_id, None) is not None
