"""Merges and unmerges of two profiles: what moves, the journal, and what moves back.

The rules (who may be merged into whom) are in domain/merges.py; here is only what they decide.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from crm_profile.domain.records import MergeCandidate, MergeInForce
from crm_profile.repository.base import Queries

_LOCK_PAIR = text("""
    SELECT customer_id, email_bidx, phone_bidx, erased_at, merged_into, order_count, refunded_order_count,
           first_order_at, last_order_at
    FROM customers WHERE customer_id IN (:survivor, :merged) ORDER BY customer_id FOR UPDATE
""")
_MOVE = [
    text("UPDATE orders SET customer_id = :survivor WHERE customer_id = :merged"),
    text("UPDATE timeline SET customer_id = :survivor WHERE customer_id = :merged"),
    text("UPDATE customer_notes SET customer_id = :survivor WHERE customer_id = :merged"),
    text("UPDATE consent_changes SET customer_id = :survivor WHERE customer_id = :merged"),
    text("""INSERT INTO customer_spend AS s (customer_id, currency, amount, refunded, order_count)
            SELECT :survivor, currency, amount, refunded, order_count FROM customer_spend WHERE customer_id = :merged
            ON CONFLICT (customer_id, currency) DO UPDATE SET amount = s.amount + excluded.amount,
                refunded = s.refunded + excluded.refunded, order_count = s.order_count + excluded.order_count"""),
    text("DELETE FROM customer_spend WHERE customer_id = :merged"),
    text("""INSERT INTO customer_categories AS cc (customer_id, category, quantity, first_bought_at, last_bought_at,
                                                   views, last_viewed_at)
            SELECT :survivor, category, quantity, first_bought_at, last_bought_at, views, last_viewed_at
            FROM customer_categories WHERE customer_id = :merged
            ON CONFLICT (customer_id, category) DO UPDATE SET quantity = cc.quantity + excluded.quantity,
                views = cc.views + excluded.views,
                first_bought_at = LEAST(cc.first_bought_at, excluded.first_bought_at),
                last_bought_at = GREATEST(cc.last_bought_at, excluded.last_bought_at),
                last_viewed_at = GREATEST(cc.last_viewed_at, excluded.last_viewed_at)"""),
    text("DELETE FROM customer_categories WHERE customer_id = :merged"),
    text("""INSERT INTO customer_name_index (prefix_bidx, customer_id)
            SELECT prefix_bidx, :survivor FROM customer_name_index WHERE customer_id = :merged
              AND NOT EXISTS (SELECT 1 FROM customer_name_index WHERE customer_id = :survivor)
            ON CONFLICT DO NOTHING"""),
    text("DELETE FROM customer_name_index WHERE customer_id = :merged"),
    text("""INSERT INTO customer_external_ids (customer_id, kind, value_enc, value_bidx, source, added_at)
            SELECT :survivor, kind, value_enc, value_bidx, source, added_at FROM customer_external_ids
            WHERE customer_id = :merged ON CONFLICT DO NOTHING"""),
    text("DELETE FROM customer_external_ids WHERE customer_id = :merged"),
    text("DELETE FROM segment_members WHERE customer_id = :merged"),
    # The survivor keeps its own values and gains what only the duplicate knew; its consents stay
    # (the most cautious reading: a consent given to one profile is not extended to another).
    text("""UPDATE customers s SET
                email_enc = COALESCE(s.email_enc, m.email_enc), email_bidx = COALESCE(s.email_bidx, m.email_bidx),
                phone_enc = COALESCE(s.phone_enc, m.phone_enc), phone_bidx = COALESCE(s.phone_bidx, m.phone_bidx),
                name_enc = COALESCE(s.name_enc, m.name_enc), address_enc = COALESCE(s.address_enc, m.address_enc),
                birthday = COALESCE(s.birthday, m.birthday), gender = COALESCE(s.gender, m.gender),
                city = COALESCE(s.city, m.city), registered_at = LEAST(s.registered_at, m.registered_at),
                locale = COALESCE(s.locale, m.locale), time_zone = COALESCE(s.time_zone, m.time_zone),
                tags = ARRAY(SELECT DISTINCT unnest(s.tags || m.tags) ORDER BY 1),
                order_count = s.order_count + m.order_count,
                refunded_order_count = s.refunded_order_count + m.refunded_order_count,
                first_order_at = LEAST(s.first_order_at, m.first_order_at),
                last_order_at = GREATEST(s.last_order_at, m.last_order_at), updated_at = now()
            FROM customers m WHERE s.customer_id = :survivor AND m.customer_id = :merged"""),
    # What is left of the duplicate: its id, pointing at the survivor.
    text("""UPDATE customers SET merged_into = :survivor, email_enc = NULL, email_bidx = NULL, phone_enc = NULL,
                phone_bidx = NULL, name_enc = NULL, address_enc = NULL, birthday = NULL, gender = NULL, city = NULL,
                locale = NULL, time_zone = NULL, tags = '{}', order_count = 0, refunded_order_count = 0,
                first_order_at = NULL, last_order_at = NULL,
                rfm_r = NULL, rfm_f = NULL, rfm_m = NULL, rfm_segment = NULL, updated_at = now()
            WHERE customer_id = :merged"""),
]
_JOURNAL = text("""
    INSERT INTO profile_merges (survivor_id, merged_id, identifier, reason, actor, merged_stats, moved)
    VALUES (:survivor, :merged, :identifier, :reason, :actor, CAST(:stats AS jsonb), CAST(:moved AS jsonb))
""")
# What a merge moves, taken before it moves it, so an unmerge can move exactly that back: row ids,
# the names of the fields the survivor lacked (never their values), the duplicate's tags and views.
_PII_FIELDS = ("email", "phone", "name", "address")
_PLAIN_FIELDS = ("birthday", "gender", "city", "locale", "time_zone")
_INVENTORY = text(f"""
    SELECT
      (SELECT coalesce(array_agg(order_id ORDER BY order_id), '{{}}') FROM orders WHERE customer_id = :merged)
          AS orders,
      (SELECT coalesce(array_agg(id ORDER BY id), '{{}}') FROM timeline WHERE customer_id = :merged) AS timeline,
      (SELECT coalesce(array_agg(CAST(note_id AS text)), '{{}}') FROM customer_notes WHERE customer_id = :merged)
          AS notes,
      (SELECT coalesce(array_agg(id ORDER BY id), '{{}}') FROM consent_changes WHERE customer_id = :merged)
          AS consent_changes,
      (SELECT coalesce(array_agg(d.kind ORDER BY d.kind), '{{}}') FROM customer_external_ids d
       WHERE d.customer_id = :merged AND NOT EXISTS (
           SELECT 1 FROM customer_external_ids k WHERE k.customer_id = :survivor AND k.kind = d.kind))
          AS external_kinds,
      (NOT EXISTS (SELECT 1 FROM customer_name_index WHERE customer_id = :survivor)) AS name_index,
      (SELECT coalesce(jsonb_object_agg(category, views), '{{}}') FROM customer_categories
       WHERE customer_id = :merged AND views > 0) AS views,
      array_remove(ARRAY[{", ".join(
          f"CASE WHEN s.{f}_enc IS NULL AND m.{f}_enc IS NOT NULL THEN '{f}' END" for f in _PII_FIELDS)},
          {", ".join(f"CASE WHEN s.{f} IS NULL AND m.{f} IS NOT NULL THEN '{f}' END" for f in _PLAIN_FIELDS)}],
          NULL) AS fields,
      s.tags AS survivor_tags, m.tags AS merged_tags, s.registered_at AS survivor_registered_at,
      m.registered_at AS merged_registered_at
    FROM customers s, customers m WHERE s.customer_id = :survivor AND m.customer_id = :merged
""")


_MERGE_IN_FORCE = text("""
    SELECT id, identifier, moved FROM profile_merges
    WHERE survivor_id = :survivor AND merged_id = :merged AND unmerged_at IS NULL
    ORDER BY id DESC LIMIT 1 FOR UPDATE
""")
_MOVE_BACK = [
    text("""UPDATE orders SET customer_id = :merged
            WHERE customer_id = :survivor AND order_id = ANY(CAST(:orders AS text[]))"""),
    text("""UPDATE timeline SET customer_id = :merged
            WHERE customer_id = :survivor AND id = ANY(CAST(:timeline AS bigint[]))"""),
    text("""UPDATE customer_notes SET customer_id = :merged
            WHERE customer_id = :survivor AND CAST(note_id AS text) = ANY(CAST(:notes AS text[]))"""),
    text("""UPDATE consent_changes SET customer_id = :merged
            WHERE customer_id = :survivor AND id = ANY(CAST(:consent_changes AS bigint[]))"""),
    text("""INSERT INTO customer_external_ids (customer_id, kind, value_enc, value_bidx, source, added_at)
            SELECT :merged, kind, value_enc, value_bidx, source, added_at FROM customer_external_ids
            WHERE customer_id = :survivor AND kind = ANY(CAST(:external_kinds AS text[])) ON CONFLICT DO NOTHING"""),
    text("""DELETE FROM customer_external_ids
            WHERE customer_id = :survivor AND kind = ANY(CAST(:external_kinds AS text[]))"""),
    text("""UPDATE customer_categories c SET views = GREATEST(0, c.views - CAST(v.views AS integer))
            FROM jsonb_each_text(CAST(:views AS jsonb)) AS v(category, views)
            WHERE c.customer_id = :survivor AND c.category = v.category"""),
    text("""INSERT INTO customer_categories AS cc (customer_id, category, views)
            SELECT :merged, category, CAST(views AS integer)
            FROM jsonb_each_text(CAST(:views AS jsonb)) AS v(category, views)
            ON CONFLICT (customer_id, category) DO UPDATE SET views = cc.views + excluded.views"""),
    text("DELETE FROM segment_members WHERE customer_id = :merged"),
]
_MOVE_NAME_INDEX_BACK = [
    text("""INSERT INTO customer_name_index (prefix_bidx, customer_id)
            SELECT prefix_bidx, :merged FROM customer_name_index WHERE customer_id = :survivor
            ON CONFLICT DO NOTHING"""),
    text("DELETE FROM customer_name_index WHERE customer_id = :survivor"),
]
# Both profiles' statistics again from the orders each now holds (the handlers' own definitions:
# paid orders count, refunds are capped at the total, categories come from the items).
_RECOUNT = [
    text("DELETE FROM customer_spend WHERE customer_id = ANY(CAST(:ids AS text[]))"),
    text("""INSERT INTO customer_spend (customer_id, currency, amount, refunded, order_count)
            SELECT customer_id, currency, sum(total_amount), sum(refunded_amount), count(*) FROM orders
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND paid_at IS NOT NULL GROUP BY customer_id, currency"""),
    text("""UPDATE customer_categories SET quantity = 0, first_bought_at = NULL, last_bought_at = NULL
            WHERE customer_id = ANY(CAST(:ids AS text[]))"""),
    text("""INSERT INTO customer_categories AS cc (customer_id, category, quantity, first_bought_at, last_bought_at)
            SELECT o.customer_id, i.category, sum(i.quantity), min(o.paid_at), max(o.paid_at)
            FROM orders o CROSS JOIN LATERAL jsonb_to_recordset(o.items) AS i(category text, quantity integer)
            WHERE o.customer_id = ANY(CAST(:ids AS text[])) AND o.paid_at IS NOT NULL AND i.category IS NOT NULL
            GROUP BY o.customer_id, i.category
            ON CONFLICT (customer_id, category) DO UPDATE SET quantity = excluded.quantity,
                first_bought_at = excluded.first_bought_at, last_bought_at = excluded.last_bought_at"""),
    text("""DELETE FROM customer_categories
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND quantity = 0 AND views = 0"""),
    text("""UPDATE customers c SET order_count = coalesce(x.orders, 0), refunded_order_count = coalesce(x.refunded, 0),
                first_order_at = x.first_at, last_order_at = x.last_at, updated_at = now()
            FROM (SELECT id AS customer_id FROM unnest(CAST(:ids AS text[])) AS id) t
            LEFT JOIN (SELECT customer_id, count(*) AS orders, count(*) FILTER (WHERE refunded_amount > 0) AS refunded,
                              min(paid_at) AS first_at, max(paid_at) AS last_at
                       FROM orders WHERE customer_id = ANY(CAST(:ids AS text[])) AND paid_at IS NOT NULL
                       GROUP BY customer_id) x USING (customer_id)
            WHERE c.customer_id = t.customer_id"""),
]
_UNMERGE_JOURNAL = text("""
    UPDATE profile_merges SET unmerged_at = :at, unmerged_by = :actor, unmerge_reason = :reason WHERE id = :id
""")


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class MergeQueries(Queries):
    async def lock_pair(self, survivor: str, merged: str) -> dict[str, MergeCandidate]:
        rows = await self.connection.execute(_LOCK_PAIR, {"survivor": survivor, "merged": merged})
        return {row.customer_id: MergeCandidate(*row) for row in rows}

    async def merge(self, *, survivor: str, merged: str, identifier: str, reason: str, actor: str,
                    stats: dict[str, Any]) -> None:
        """Journal what the merge moves (taken before it moves it), then move it."""
        tx = self.connection
        row = (await tx.execute(_INVENTORY, {"survivor": survivor, "merged": merged})).mappings().one()
        moved = dict(row)
        for key in ("survivor_registered_at", "merged_registered_at"):
            moved[key] = moved[key].isoformat() if moved[key] else None
        await tx.execute(_JOURNAL, {"survivor": survivor, "merged": merged, "identifier": identifier,
                                    "reason": reason, "actor": actor, "stats": orjson.dumps(stats).decode(),
                                    "moved": orjson.dumps(moved).decode()})
        for statement in _MOVE:
            await tx.execute(statement, {"survivor": survivor, "merged": merged})

    async def merge_in_force(self, survivor: str, merged: str) -> MergeInForce | None:
        """The journal entry of the merge in force, locked (``moved`` empty: it predates unmerging)."""
        journal = (await self.connection.execute(_MERGE_IN_FORCE, {"survivor": survivor, "merged": merged})).first()
        if journal is None:
            return None
        moved = journal.moved if isinstance(journal.moved, dict) else orjson.loads(journal.moved)
        return MergeInForce(journal.id, journal.identifier, moved or {})

    async def unmerge(self, *, survivor: str, merged: str, journal: MergeInForce, reason: str, actor: str,
                      at: datetime) -> None:
        """Move back what the merge moved (rows by id, the fields the survivor took, the duplicate's
        tags and category views); count both profiles' statistics again from their orders."""
        tx, moved = self.connection, journal.moved
        ids = {"survivor": survivor, "merged": merged}
        await tx.execute(_MOVE_BACK[0], {**ids, "orders": moved["orders"]})
        await tx.execute(_MOVE_BACK[1], {**ids, "timeline": moved["timeline"]})
        await tx.execute(_MOVE_BACK[2], {**ids, "notes": moved["notes"]})
        await tx.execute(_MOVE_BACK[3], {**ids, "consent_changes": moved["consent_changes"]})
        for statement in _MOVE_BACK[4:6]:
            await tx.execute(statement, {**ids, "external_kinds": moved["external_kinds"]})
        for statement in _MOVE_BACK[6:8]:
            await tx.execute(statement, {**ids, "views": orjson.dumps(moved["views"]).decode()})
        await tx.execute(_MOVE_BACK[8], ids)
        if moved["name_index"] and "name" in moved["fields"]:
            for statement in _MOVE_NAME_INDEX_BACK:
                await tx.execute(statement, ids)
        # The fields the survivor took go back; the identifier both shared is the duplicate's too.
        columns = [f"{f}_enc" for f in moved["fields"] if f in _PII_FIELDS] + \
            [f"{f}_bidx" for f in moved["fields"] if f in ("email", "phone")] + \
            [f for f in moved["fields"] if f in _PLAIN_FIELDS]
        shared = [f"{journal.identifier}_enc", f"{journal.identifier}_bidx"]
        assignments = ", ".join(f"{c} = s.{c}" for c in dict.fromkeys(columns + shared))
        await tx.execute(text(f"""
            UPDATE customers m SET {assignments}, merged_into = NULL, tags = CAST(:merged_tags AS text[]),
                registered_at = CAST(:merged_registered_at AS timestamptz), updated_at = now()
            FROM customers s WHERE m.customer_id = :merged AND s.customer_id = :survivor"""),
            {**ids, "merged_tags": moved["merged_tags"], "merged_registered_at": _when(moved["merged_registered_at"])})
        cleared = ", ".join(f"{c} = NULL" for c in columns)
        await tx.execute(text(f"""
            UPDATE customers SET {cleared + ", " if cleared else ""}
                tags = ARRAY(SELECT t FROM unnest(tags) AS t
                             WHERE t = ANY(CAST(:survivor_tags AS text[])) OR NOT t = ANY(CAST(:merged_tags AS text[]))
                             ORDER BY 1),
                registered_at = CAST(:survivor_registered_at AS timestamptz), updated_at = now()
            WHERE customer_id = :survivor"""),
            {**ids, "survivor_tags": moved["survivor_tags"], "merged_tags": moved["merged_tags"],
             "survivor_registered_at": _when(moved["survivor_registered_at"])})
        for statement in _RECOUNT:
            await tx.execute(statement, {"ids": [survivor, merged]})
        await tx.execute(_UNMERGE_JOURNAL, {"id": journal.id, "at": at, "actor": actor, "reason": reason})
