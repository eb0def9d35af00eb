"""Campaigns in force, their occurrences and contacts: what the planner and the triggers write,
and the queue of due contacts the delivery worker claims. Repositories never commit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from crm_campaigns.repository.base import Sql

_IN_FORCE = """
    SELECT c.campaign_id, c.name, c.kind, c.status, c.schedule, c.actions, c.rules, c.audience_id, c.template_id,
           a.definition, t.channel, t.contents
    FROM campaigns c LEFT JOIN audiences a USING (audience_id) LEFT JOIN templates t USING (template_id)
"""
_ACTIVE_OF_KIND = text(f"{_IN_FORCE} WHERE c.status = 'active' AND c.kind = :kind ORDER BY c.campaign_id")
_ACTIVE_TRIGGERED = text(f"""{_IN_FORCE} WHERE c.status = 'active' AND c.kind = 'triggered'
                             AND c.schedule->>'trigger' = :trigger ORDER BY c.campaign_id""")
_CAMPAIGN_IN_FORCE = text(f"{_IN_FORCE} WHERE c.campaign_id = :campaign_id")
_OCCURRENCE = text("""
    INSERT INTO occurrences (campaign_id, occurrence_key, planned_at) VALUES (:campaign_id, :key, :at)
    ON CONFLICT (campaign_id, occurrence_key) DO UPDATE SET planned_at = occurrences.planned_at
    RETURNING cursor, complete
""")
_ADVANCE = text("""UPDATE occurrences SET cursor = :cursor, complete = :complete, contacts = contacts + :added
                   WHERE campaign_id = :campaign_id AND occurrence_key = :key""")
_ADD_CONTACTS = text("""
    INSERT INTO contacts (campaign_id, occurrence_key, customer_id, group_name, due_at, created_at, attributes)
    SELECT * FROM unnest(CAST(:campaign_ids AS text[]), CAST(:keys AS text[]), CAST(:customer_ids AS text[]),
                         CAST(:groups AS text[]), CAST(:due AS timestamptz[]), CAST(:created AS timestamptz[]),
                         CAST(:attributes AS jsonb[]))
    ON CONFLICT DO NOTHING RETURNING 1
""")
_COMPLETE_ONE_SHOTS = text("""
    UPDATE campaigns c SET status = 'completed', updated_at = :at
    WHERE c.kind = 'one_shot' AND c.status = 'active'
      AND EXISTS (SELECT 1 FROM occurrences o WHERE o.campaign_id = c.campaign_id AND o.complete)
      AND NOT EXISTS (SELECT 1 FROM contacts k WHERE k.campaign_id = c.campaign_id AND k.state = 'pending')
    RETURNING c.campaign_id
""")
_CLAIM_DUE = text("""
    UPDATE contacts c SET lease_until = :lease_until
    FROM (SELECT k.campaign_id, k.occurrence_key, k.customer_id FROM contacts k
          JOIN campaigns USING (campaign_id)
          WHERE k.state = 'pending' AND k.due_at <= :now AND (k.lease_until IS NULL OR k.lease_until < :now)
            AND campaigns.status = 'active'
          ORDER BY k.due_at LIMIT :limit FOR UPDATE OF k SKIP LOCKED) due
    WHERE (c.campaign_id, c.occurrence_key, c.customer_id) = (due.campaign_id, due.occurrence_key, due.customer_id)
    RETURNING c.campaign_id, c.occurrence_key, c.customer_id, c.group_name, c.due_at, c.created_at, c.actions_done,
              c.attributes, c.attempts
""")
_KEY = "campaign_id = :campaign_id AND occurrence_key = :occurrence_key AND customer_id = :customer_id"
_FINISH = text(f"""UPDATE contacts SET state = :state, skip_reason = :reason, contacted_at = :at, lease_until = NULL
                   WHERE {_KEY} AND state = 'pending'""")
_DEFER = text(f"""UPDATE contacts SET due_at = :due_at, lease_until = NULL, attempts = attempts + :failed
                  WHERE {_KEY} AND state = 'pending'""")
_REOPEN = text(f"""UPDATE contacts SET state = 'pending', contacted_at = NULL, lease_until = NULL
                   WHERE {_KEY} AND state = 'done'""")
_ACTION_DONE = text(f"""UPDATE contacts SET actions_done = actions_done || CAST(:done AS jsonb) WHERE {_KEY}""")
_ACTION_RESULT = text("""
    INSERT INTO action_results (campaign_id, occurrence_key, customer_id, kind, reference, points, at)
    VALUES (:campaign_id, :occurrence_key, :customer_id, :kind, :reference, :points, :at) ON CONFLICT DO NOTHING
""")
_CONTACTED_SINCE = text("""SELECT EXISTS (SELECT 1 FROM contacts WHERE campaign_id = :campaign_id
                           AND customer_id = :customer_id AND state = 'done' AND group_name = 'treatment'
                           AND contacted_at >= :since)""")


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _campaign(row: Any) -> dict[str, Any]:
    found = dict(row._mapping)
    for key in ("schedule", "actions", "rules", "definition", "contents"):
        found[key] = _json(found[key]) if found[key] is not None else None
    return found


class PlanningSql(Sql):
    async def active_campaigns(self, kind: str) -> list[dict[str, Any]]:
        return [_campaign(r) for r in await self.conn.execute(_ACTIVE_OF_KIND, {"kind": kind})]

    async def active_triggered(self, trigger: str) -> list[dict[str, Any]]:
        return [_campaign(r) for r in await self.conn.execute(_ACTIVE_TRIGGERED, {"trigger": trigger})]

    async def campaign_in_force(self, campaign_id: str) -> dict[str, Any] | None:
        row = (await self.conn.execute(_CAMPAIGN_IN_FORCE, {"campaign_id": campaign_id})).first()
        return _campaign(row) if row is not None else None

    async def open_occurrence(self, campaign_id: str, key: str, at: datetime) -> tuple[str, bool]:
        """The occurrence's planning cursor and whether it is complete (creating it if new)."""
        row = (await self.conn.execute(_OCCURRENCE, {"campaign_id": campaign_id, "key": key, "at": at})).one()
        return row.cursor, row.complete

    async def advance_occurrence(self, campaign_id: str, key: str, *, cursor: str, added: int,
                                 complete: bool) -> None:
        await self.conn.execute(_ADVANCE, {"campaign_id": campaign_id, "key": key, "cursor": cursor,
                                           "added": added, "complete": complete})

    async def add_contacts(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """New contacts (an existing one is left as it is: once per campaign, occurrence, customer)."""
        if not rows:
            return 0
        result = await self.conn.execute(_ADD_CONTACTS, {
            "campaign_ids": [r["campaign_id"] for r in rows], "keys": [r["occurrence_key"] for r in rows],
            "customer_ids": [r["customer_id"] for r in rows], "groups": [r["group_name"] for r in rows],
            "due": [r["due_at"] for r in rows], "created": [r["created_at"] for r in rows],
            "attributes": [orjson.dumps(r.get("attributes") or {}).decode() for r in rows]})
        return len(result.all())

    async def complete_one_shots(self, at: datetime) -> list[str]:
        return [r.campaign_id for r in await self.conn.execute(_COMPLETE_ONE_SHOTS, {"at": at})]

    async def claim_due_contacts(self, now: datetime, lease_until: datetime, limit: int) -> list[dict[str, Any]]:
        rows = await self.conn.execute(_CLAIM_DUE, {"now": now, "lease_until": lease_until, "limit": limit})
        return [{**r._mapping, "actions_done": _json(r.actions_done), "attributes": _json(r.attributes)} for r in rows]

    async def finish_contact(self, key: Mapping[str, str], *, state: str, reason: str | None, at: datetime) -> None:
        await self.conn.execute(_FINISH, {**key, "state": state, "reason": reason, "at": at})

    async def defer_contact(self, key: Mapping[str, str], due_at: datetime, *, failed: bool = False) -> None:
        """Due again at ``due_at`` (quiet hours; or, ``failed``, a retry after a passing failure)."""
        await self.conn.execute(_DEFER, {**key, "due_at": due_at, "failed": int(failed)})

    async def record_action(self, key: Mapping[str, str], kind: str, *, reference: str | None, points: int | None,
                            at: datetime) -> None:
        await self.conn.execute(_ACTION_RESULT, {**key, "kind": kind, "reference": reference, "points": points,
                                                 "at": at})
        await self.conn.execute(_ACTION_DONE, {**key, "done": orjson.dumps({kind: reference or True}).decode()})

    async def reopen_contact(self, key: Mapping[str, str]) -> None:
        await self.conn.execute(_REOPEN, dict(key))

    async def mark_action(self, key: Mapping[str, str], kind: str, outcome: str) -> None:
        await self.conn.execute(_ACTION_DONE, {**key, "done": orjson.dumps({kind: outcome}).decode()})

    async def contacted_since(self, campaign_id: str, customer_id: str, since: datetime) -> bool:
        return (await self.conn.execute(_CONTACTED_SINCE, {"campaign_id": campaign_id, "customer_id": customer_id,
                                                           "since": since})).scalar_one()
