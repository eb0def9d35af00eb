"""Reads and writes of the customer archive, shared by the event handlers and the HTTP routes.

PII is encrypted here on the way in and decrypted on the way out: nothing below this module
sees plaintext e-mail, phone, name or address. Functions take the caller's transaction and
never commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from crm_shared.bus import add_to_outbox
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.domain.events import customer_updated
from crm_profile.domain.identity import name_prefixes
from crm_profile.domain.pii import PiiVault

CONSENT_CHANNELS = ("email", "sms")


@dataclass
class IdentityChange:
    """What one event or one agent's edit says about a customer; None means "not said"."""

    customer_id: str
    changed_at: datetime
    source: str                      # the event source, or agent:<id>
    email: str | None = None         # normalised
    phone: str | None = None         # normalised (E.164)
    name: str | None = None
    address: str | None = None
    birthday: date | None = None
    gender: str | None = None
    city: str | None = None
    registered_at: datetime | None = None
    consents: dict[str, bool] = field(default_factory=dict)
    tags: list[str] | None = None


_LOCK_CONSENTS = text("""
    SELECT customer_id, consent_email, consent_sms FROM customers
    WHERE customer_id = ANY(CAST(:ids AS text[])) FOR UPDATE
""")

# A null means "not sent", never "erase" (erasure is a privacy command of its own).
_UPSERT = text("""
    INSERT INTO customers AS c (customer_id, email_enc, email_bidx, phone_enc, phone_bidx, name_enc, address_enc,
                                birthday, gender, city, registered_at,
                                consent_email, consent_email_at, consent_email_source,
                                consent_sms, consent_sms_at, consent_sms_source)
    SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:email_encs AS bytea[]), CAST(:email_bidxs AS bytea[]),
                CAST(:phone_encs AS bytea[]), CAST(:phone_bidxs AS bytea[]), CAST(:name_encs AS bytea[]),
                CAST(:address_encs AS bytea[]), CAST(:birthdays AS date[]), CAST(:genders AS text[]),
                CAST(:cities AS text[]), CAST(:registered_ats AS timestamptz[]),
                CAST(:consent_emails AS boolean[]), CAST(:consent_email_ats AS timestamptz[]),
                CAST(:consent_email_sources AS text[]), CAST(:consent_smss AS boolean[]),
                CAST(:consent_sms_ats AS timestamptz[]), CAST(:consent_sms_sources AS text[]))
    ON CONFLICT (customer_id) DO UPDATE SET
        -- An erased customer's PII is never stored again, whatever the shop sends later.
        email_enc            = CASE WHEN c.erased_at IS NULL THEN COALESCE(excluded.email_enc, c.email_enc) END,
        email_bidx           = CASE WHEN c.erased_at IS NULL THEN COALESCE(excluded.email_bidx, c.email_bidx) END,
        phone_enc            = CASE WHEN c.erased_at IS NULL THEN COALESCE(excluded.phone_enc, c.phone_enc) END,
        phone_bidx           = CASE WHEN c.erased_at IS NULL THEN COALESCE(excluded.phone_bidx, c.phone_bidx) END,
        name_enc             = CASE WHEN c.erased_at IS NULL THEN COALESCE(excluded.name_enc, c.name_enc) END,
        address_enc          = CASE WHEN c.erased_at IS NULL THEN COALESCE(excluded.address_enc, c.address_enc) END,
        birthday             = CASE WHEN c.erased_at IS NULL THEN COALESCE(excluded.birthday, c.birthday) END,
        gender               = CASE WHEN c.erased_at IS NULL THEN COALESCE(excluded.gender, c.gender) END,
        city                 = CASE WHEN c.erased_at IS NULL THEN COALESCE(excluded.city, c.city) END,
        registered_at        = COALESCE(c.registered_at, excluded.registered_at),
        consent_email        = COALESCE(excluded.consent_email, c.consent_email),
        consent_email_at     = COALESCE(excluded.consent_email_at, c.consent_email_at),
        consent_email_source = COALESCE(excluded.consent_email_source, c.consent_email_source),
        consent_sms          = COALESCE(excluded.consent_sms, c.consent_sms),
        consent_sms_at       = COALESCE(excluded.consent_sms_at, c.consent_sms_at),
        consent_sms_source   = COALESCE(excluded.consent_sms_source, c.consent_sms_source),
        updated_at           = now()
    RETURNING customer_id, order_count, first_order_at, last_order_at, erased_at
""")

_SET_TAGS = text("UPDATE customers SET tags = :tags, updated_at = now() WHERE customer_id = :customer_id")

_RECORD_CONSENTS = text("""
    INSERT INTO consent_changes (customer_id, channel, granted, changed_at, source)
    SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:channels AS text[]), CAST(:granted AS boolean[]),
                         CAST(:changed_ats AS timestamptz[]), CAST(:sources AS text[]))
""")
_CLEAR_NAME_INDEX = text("DELETE FROM customer_name_index WHERE customer_id = ANY(CAST(:ids AS text[]))")
_INDEX_NAMES = text("""
    INSERT INTO customer_name_index (prefix_bidx, customer_id)
    SELECT * FROM unnest(CAST(:prefixes AS bytea[]), CAST(:customer_ids AS text[])) ON CONFLICT DO NOTHING
""")


def name_index_keys(vault: PiiVault, name: str | None) -> set[bytes]:
    """The blind indexes a name is found by (customer_name_index): one per prefix."""
    return {vault.index("name", prefix) for prefix in name_prefixes(name)}


def external_field(kind: str) -> str:
    """The field an external identifier of this kind is sealed and indexed under."""
    return f"external:{kind}"


def _merge(changes: list[IdentityChange]) -> dict[str, IdentityChange]:
    """One change per customer: later values win, fields not said keep the earlier ones."""
    merged: dict[str, IdentityChange] = {}
    for change in changes:
        current = merged.get(change.customer_id)
        if current is None:
            merged[change.customer_id] = IdentityChange(**{**change.__dict__, "consents": dict(change.consents)})
            continue
        for name in ("email", "phone", "name", "address", "birthday", "gender", "city", "registered_at", "tags"):
            value = getattr(change, name)
            if value is not None:
                setattr(current, name, value)
        current.consents.update(change.consents)
        current.changed_at, current.source = change.changed_at, change.source
    return merged


async def write_identities(tx: AsyncConnection, vault: PiiVault, changes: list[IdentityChange]) -> list[Any]:
    """Apply identity changes in order (one statement per kind of row, whatever their number).

    Every consent change is recorded with its time and source, also when one batch holds
    several changes of the same customer. Returns the customers' statistics rows.
    """
    if not changes:
        return []
    ids = sorted({c.customer_id for c in changes})
    current = {row.customer_id: {"email": row.consent_email, "sms": row.consent_sms}
               for row in await tx.execute(_LOCK_CONSENTS, {"ids": ids})}
    consent_rows: list[tuple[str, str, bool, datetime, str]] = []
    last_consent: dict[tuple[str, str], tuple[bool, datetime, str]] = {}
    for change in changes:
        state = current.setdefault(change.customer_id, {"email": None, "sms": None})
        for channel, granted in change.consents.items():
            if state[channel] != granted:
                consent_rows.append((change.customer_id, channel, granted, change.changed_at, change.source))
                last_consent[(change.customer_id, channel)] = (granted, change.changed_at, change.source)
                state[channel] = granted
    merged = _merge(changes)
    rows = list(merged.values())

    def consent(channel: str, part: int) -> list[Any]:
        return [last_consent.get((r.customer_id, channel), (None, None, None))[part] for r in rows]

    result = await tx.execute(_UPSERT, {
        "customer_ids": [r.customer_id for r in rows],
        "email_encs": [vault.seal("email", r.email) for r in rows],
        "email_bidxs": [vault.index("email", r.email) for r in rows],
        "phone_encs": [vault.seal("phone", r.phone) for r in rows],
        "phone_bidxs": [vault.index("phone", r.phone) for r in rows],
        "name_encs": [vault.seal("name", r.name) for r in rows],
        "address_encs": [vault.seal("address", r.address) for r in rows],
        "birthdays": [r.birthday for r in rows], "genders": [r.gender for r in rows],
        "cities": [r.city for r in rows], "registered_ats": [r.registered_at for r in rows],
        "consent_emails": consent("email", 0), "consent_email_ats": consent("email", 1),
        "consent_email_sources": consent("email", 2),
        "consent_smss": consent("sms", 0), "consent_sms_ats": consent("sms", 1),
        "consent_sms_sources": consent("sms", 2),
    })
    statistics = result.all()
    if consent_rows:
        columns = list(zip(*consent_rows, strict=True))
        await tx.execute(_RECORD_CONSENTS, {"customer_ids": list(columns[0]), "channels": list(columns[1]),
                                            "granted": list(columns[2]), "changed_ats": list(columns[3]),
                                            "sources": list(columns[4])})
    erased = {row.customer_id for row in statistics if row.erased_at is not None}
    named = [r for r in rows if r.name is not None and r.customer_id not in erased]
    if named:
        await tx.execute(_CLEAR_NAME_INDEX, {"ids": [r.customer_id for r in named]})
        pairs = [(key, r.customer_id) for r in named for key in name_index_keys(vault, r.name)]
        await tx.execute(_INDEX_NAMES, {"prefixes": [p for p, _ in pairs], "customer_ids": [c for _, c in pairs]})
    for r in rows:
        if r.tags is not None:
            await tx.execute(_SET_TAGS, {"customer_id": r.customer_id, "tags": r.tags})
    return statistics


# Everything the profile shows, in one statement: amounts travel as text (never floats).
_PROFILE = text("""
    SELECT c.*,
        (SELECT json_object_agg(s.currency, json_build_object(
                    'paid', CAST(s.amount AS text), 'refunded', CAST(s.refunded AS text), 'orders', s.order_count))
         FROM customer_spend s WHERE s.customer_id = c.customer_id) AS spend,
        (SELECT json_agg(json_build_object('category', x.category, 'quantity', x.quantity,
                                           'last_bought_at', x.last_bought_at) ORDER BY x.quantity DESC, x.category)
         FROM (SELECT * FROM customer_categories cc WHERE cc.customer_id = c.customer_id AND cc.quantity > 0
               ORDER BY cc.quantity DESC, cc.category LIMIT 10) x) AS categories,
        -- Favourites: a unit bought weighs as much as three product views.
        ARRAY(SELECT cc.category FROM customer_categories cc WHERE cc.customer_id = c.customer_id
              ORDER BY cc.quantity * 3 + cc.views DESC, cc.category LIMIT 5) AS favourite_categories,
        (SELECT json_build_object(
                    'last_7_days', count(*) FILTER (WHERE t.occurred_at > now() - interval '7 days'),
                    'last_30_days', count(*) FILTER (WHERE t.occurred_at > now() - interval '30 days'),
                    'last_90_days', count(*))
         FROM timeline t WHERE t.customer_id = c.customer_id AND t.kind LIKE 'interaction.%'
                           AND t.occurred_at > now() - interval '90 days') AS activity,
        ARRAY(SELECT m.segment_id FROM segment_members m WHERE m.customer_id = c.customer_id
              ORDER BY m.segment_id) AS segments
    FROM customers c WHERE c.customer_id = :customer_id
""")


async def load_profile(db: AsyncConnection, vault: PiiVault, customer_id: str) -> dict[str, Any] | None:
    """The customer's row with PII decrypted and spend per currency (amounts as text); one statement."""
    row = (await db.execute(_PROFILE, {"customer_id": customer_id})).mappings().first()
    if row is None:
        return None
    profile = dict(row)
    for name in ("email", "phone", "name", "address"):
        profile[name] = vault.open(name, profile.pop(f"{name}_enc"))
    return profile


_SEARCH = {
    "email": text("""SELECT customer_id FROM customers WHERE email_bidx = :key AND customer_id > :after
                     ORDER BY customer_id LIMIT :limit"""),
    "phone": text("""SELECT customer_id FROM customers WHERE phone_bidx = :key AND customer_id > :after
                     ORDER BY customer_id LIMIT :limit"""),
    "name": text("""SELECT customer_id FROM customer_name_index WHERE prefix_bidx = :key AND customer_id > :after
                    ORDER BY customer_id LIMIT :limit"""),
    "customer_id": text("""SELECT customer_id FROM customers WHERE customer_id = :key AND customer_id > :after
                           LIMIT :limit"""),
    "external_id": text("""SELECT customer_id FROM customer_external_ids WHERE kind = :kind AND value_bidx = :key
                           AND customer_id > :after ORDER BY customer_id LIMIT :limit"""),
}


async def search_customer_ids(db: AsyncConnection, by: str, key: Any, *, after: str, limit: int,
                              kind: str | None = None) -> list[str]:
    """Customer ids matching one criterion, in id order after ``after`` (keyset pagination)."""
    params = {"key": key, "after": after, "limit": limit}
    if kind is not None:
        params["kind"] = kind
    rows = await db.execute(_SEARCH[by], params)
    return [row.customer_id for row in rows]


_AUDIT = text("""
    INSERT INTO pii_access_log (actor, role, customer_id, fields, reason, request_id)
    VALUES (:actor, :role, :customer_id, :fields, :reason, :request_id)
""")


async def record_pii_access(db: AsyncConnection, *, actor: str, role: str, customer_id: str, fields: list[str],
                            reason: str, request_id: str | None) -> None:
    await db.execute(_AUDIT, {"actor": actor, "role": role, "customer_id": customer_id, "fields": fields,
                              "reason": reason, "request_id": request_id})


_SPEND_OF = text("""
    SELECT customer_id, currency, amount - refunded AS amount FROM customer_spend
    WHERE customer_id = ANY(CAST(:ids AS text[]))
""")


async def emit_customer_updated(tx: AsyncConnection, changed_rows: list[Any], *, changed: list[str],
                                traceparents: dict[str, str | None]) -> None:
    """One ``crm.profile.customer.updated`` per changed customer, in the same transaction."""
    if not changed_rows:
        return
    ids = [row.customer_id for row in changed_rows]
    spend: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for row in await tx.execute(_SPEND_OF, {"ids": ids}):
        spend[row.customer_id][row.currency] = row.amount
    await add_to_outbox(tx, [
        customer_updated(customer_id=row.customer_id, changed=changed, order_count=row.order_count,
                         total_spent=spend.get(row.customer_id, {}), first_order_at=row.first_order_at,
                         last_order_at=row.last_order_at, cause_traceparent=traceparents.get(row.customer_id))
        for row in changed_rows
    ])


_RECORD_REQUEST = text("""
    INSERT INTO privacy_requests (customer_id, kind, actor, role, reason)
    VALUES (:customer_id, :kind, :actor, :role, :reason)
""")


async def record_privacy_request(tx: AsyncConnection, *, customer_id: str, kind: str, actor: str, role: str,
                                 reason: str) -> None:
    await tx.execute(_RECORD_REQUEST, {"customer_id": customer_id, "kind": kind, "actor": actor, "role": role,
                                       "reason": reason})


_EXPORT_QUERIES = {
    "orders": text("""SELECT order_id, status, currency, CAST(total_amount AS text) AS total_amount,
                             CAST(refunded_amount AS text) AS refunded_amount, channel, items, placed_at, paid_at,
                             completed_at, cancelled_at
                      FROM orders WHERE customer_id = :customer_id ORDER BY COALESCE(paid_at, placed_at)"""),
    "timeline": text("""SELECT occurred_at, kind, channel, details, event_id FROM timeline
                        WHERE customer_id = :customer_id ORDER BY occurred_at, id"""),
    "consent_changes": text("""SELECT channel, granted, changed_at, source FROM consent_changes
                               WHERE customer_id = :customer_id ORDER BY changed_at, id"""),
    "notes": text("""SELECT note_id, author, body, created_at FROM customer_notes
                     WHERE customer_id = :customer_id ORDER BY created_at"""),
    "categories": text("""SELECT category, quantity, first_bought_at, last_bought_at FROM customer_categories
                          WHERE customer_id = :customer_id ORDER BY category"""),
    "pii_access_log": text("""SELECT accessed_at, actor, role, fields, reason FROM pii_access_log
                              WHERE customer_id = :customer_id ORDER BY accessed_at"""),
    "privacy_requests": text("""SELECT kind, actor, role, reason, requested_at FROM privacy_requests
                                WHERE customer_id = :customer_id ORDER BY requested_at"""),
}


async def export_related(db: AsyncConnection, customer_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every other table's rows about the customer, for the data export."""
    return {name: [dict(row) for row in (await db.execute(query, {"customer_id": customer_id})).mappings()]
            for name, query in _EXPORT_QUERIES.items()}


class MergeRefused(ValueError):
    """Why two profiles may not be merged; the route turns it into a 404, 409 or 422."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


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
                tags = ARRAY(SELECT DISTINCT unnest(s.tags || m.tags) ORDER BY 1),
                order_count = s.order_count + m.order_count,
                refunded_order_count = s.refunded_order_count + m.refunded_order_count,
                first_order_at = LEAST(s.first_order_at, m.first_order_at),
                last_order_at = GREATEST(s.last_order_at, m.last_order_at), updated_at = now()
            FROM customers m WHERE s.customer_id = :survivor AND m.customer_id = :merged"""),
    # What is left of the duplicate: its id, pointing at the survivor.
    text("""UPDATE customers SET merged_into = :survivor, email_enc = NULL, email_bidx = NULL, phone_enc = NULL,
                phone_bidx = NULL, name_enc = NULL, address_enc = NULL, birthday = NULL, gender = NULL, city = NULL,
                tags = '{}', order_count = 0, refunded_order_count = 0, first_order_at = NULL, last_order_at = NULL,
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
_PLAIN_FIELDS = ("birthday", "gender", "city")
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


async def _inventory(tx: AsyncConnection, survivor: str, merged: str) -> dict[str, Any]:
    row = (await tx.execute(_INVENTORY, {"survivor": survivor, "merged": merged})).mappings().one()
    moved = dict(row)
    for key in ("survivor_registered_at", "merged_registered_at"):
        moved[key] = moved[key].isoformat() if moved[key] else None
    return moved
_SURVIVOR = text("SELECT customer_id, order_count, first_order_at, last_order_at FROM customers "
                 "WHERE customer_id = :survivor")


async def merge_profiles(tx: AsyncConnection, *, survivor: str, merged: str, identifier: str, reason: str,
                         actor: str) -> Any:
    """Merge ``merged`` into ``survivor`` when both hold the same normalised ``identifier``.

    Junk values are never indexed (domain/identity.py), so two profiles can never be merged on
    "null", "0000000" or an empty value. Returns the survivor's statistics row.
    """
    if survivor == merged:
        raise MergeRefused(422, "a profile cannot be merged into itself")
    rows = {row.customer_id: row for row in await tx.execute(_LOCK_PAIR, {"survivor": survivor, "merged": merged})}
    for customer_id in (survivor, merged):
        if customer_id not in rows:
            raise MergeRefused(404, f"customer {customer_id!r} does not exist")
        if rows[customer_id].merged_into is not None:
            raise MergeRefused(409, f"customer {customer_id!r} was already merged "
                                    f"into {rows[customer_id].merged_into!r}")
        if rows[customer_id].erased_at is not None:
            raise MergeRefused(422, f"customer {customer_id!r} was erased")
    column = f"{identifier}_bidx"
    shared = getattr(rows[survivor], column)
    if shared is None or shared != getattr(rows[merged], column):
        raise MergeRefused(422, f"the two profiles do not share a usable {identifier}")
    gone = rows[merged]
    stats = {"order_count": gone.order_count, "refunded_order_count": gone.refunded_order_count,
             "first_order_at": gone.first_order_at, "last_order_at": gone.last_order_at}
    moved = await _inventory(tx, survivor, merged)
    await tx.execute(_JOURNAL, {"survivor": survivor, "merged": merged, "identifier": identifier, "reason": reason,
                                "actor": actor, "stats": orjson.dumps(stats).decode(),
                                "moved": orjson.dumps(moved).decode()})
    for statement in _MOVE:
        await tx.execute(statement, {"survivor": survivor, "merged": merged})
    return (await tx.execute(_SURVIVOR, {"survivor": survivor})).first()


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
_TWO = text("SELECT customer_id, order_count, first_order_at, last_order_at FROM customers "
            "WHERE customer_id IN (:survivor, :merged) ORDER BY customer_id")


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def unmerge_profiles(tx: AsyncConnection, *, survivor: str, merged: str, reason: str, actor: str,
                           at: datetime) -> list[Any]:
    """Undo the merge of ``merged`` into ``survivor``: what the merge moved goes back (rows by id,
    the fields the survivor took, the duplicate's tags and category views); what reached the
    survivor since stays with it. Both profiles' statistics are counted again from their orders.
    Returns both statistics rows."""
    rows = {row.customer_id: row for row in await tx.execute(_LOCK_PAIR, {"survivor": survivor, "merged": merged})}
    for customer_id in (survivor, merged):
        if customer_id not in rows:
            raise MergeRefused(404, f"customer {customer_id!r} does not exist")
    if rows[merged].merged_into != survivor:
        raise MergeRefused(404, f"customer {merged!r} is not merged into {survivor!r}")
    if rows[survivor].merged_into is not None:
        raise MergeRefused(409, f"customer {survivor!r} was merged into {rows[survivor].merged_into!r} since: "
                                "undo that merge first")
    for customer_id in (survivor, merged):
        if rows[customer_id].erased_at is not None:
            raise MergeRefused(422, f"customer {customer_id!r} was erased")
    journal = (await tx.execute(_MERGE_IN_FORCE, {"survivor": survivor, "merged": merged})).first()
    moved = journal.moved if journal is not None and isinstance(journal.moved, dict) else \
        orjson.loads(journal.moved) if journal is not None else {}
    if not moved:
        raise MergeRefused(422, "this merge predates unmerging: what it moved was not recorded")
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
    return list(await tx.execute(_TWO, ids))


_DUPLICATES = text("""
    SELECT o.customer_id,
           (o.email_bidx IS NOT NULL AND o.email_bidx = c.email_bidx) AS same_email,
           (o.phone_bidx IS NOT NULL AND o.phone_bidx = c.phone_bidx) AS same_phone
    FROM customers c JOIN customers o
      ON o.customer_id <> c.customer_id AND (o.email_bidx = c.email_bidx OR o.phone_bidx = c.phone_bidx)
    WHERE c.customer_id = :customer_id AND o.erased_at IS NULL AND o.merged_into IS NULL
    ORDER BY o.customer_id LIMIT 50
""")


async def find_duplicates(db: AsyncConnection, customer_id: str) -> list[Any]:
    return (await db.execute(_DUPLICATES, {"customer_id": customer_id})).all()


_MERGED_INTO = text("""
    SELECT customer_id, merged_into FROM customers
    WHERE customer_id = ANY(CAST(:ids AS text[])) AND merged_into IS NOT NULL
""")


async def survivors_of(tx: AsyncConnection, customer_ids: list[str]) -> dict[str, str]:
    """Merged ids among ``customer_ids`` and the profile each now is: a survivor merged into a
    third profile later passes its duplicates on (A into B, then B into C: A is C)."""
    current = {row.customer_id: row.merged_into for row in await tx.execute(_MERGED_INTO, {"ids": customer_ids})}
    resolved = dict(current)
    for _ in range(8):
        step = {row.customer_id: row.merged_into
                for row in await tx.execute(_MERGED_INTO, {"ids": sorted(set(current.values()))})} if current else {}
        current = {origin: step[now] for origin, now in current.items() if now in step}
        if not current:
            break
        resolved.update(current)
    return resolved


_SET_EXTERNAL_ID = text("""
    INSERT INTO customer_external_ids (customer_id, kind, value_enc, value_bidx, source)
    VALUES (:customer_id, :kind, :value_enc, :value_bidx, :source)
    ON CONFLICT (customer_id, kind) DO UPDATE SET value_enc = excluded.value_enc, value_bidx = excluded.value_bidx,
        source = excluded.source, added_at = now()
""")
_EXTERNAL_IDS = text("SELECT kind, value_enc FROM customer_external_ids WHERE customer_id = :customer_id ORDER BY kind")


async def set_external_ids(tx: AsyncConnection, vault: PiiVault, customer_id: str, ids: dict[str, str],
                           source: str) -> None:
    """Add or replace a customer's external identifiers (one per kind), encrypted and indexed."""
    for kind, value in ids.items():
        await tx.execute(_SET_EXTERNAL_ID, {"customer_id": customer_id, "kind": kind, "source": source,
                                            "value_enc": vault.seal(external_field(kind), value),
                                            "value_bidx": vault.index(external_field(kind), value)})


async def external_ids_of(db: AsyncConnection, vault: PiiVault, customer_id: str) -> dict[str, str]:
    return {row.kind: vault.open(external_field(row.kind), row.value_enc)
            for row in await db.execute(_EXTERNAL_IDS, {"customer_id": customer_id})}
