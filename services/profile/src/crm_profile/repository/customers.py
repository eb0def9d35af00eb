"""Customers and their identity: the upsert of identity changes, the profile read, search, external
ids, the merge redirection of ids and the statistics announced to the other services.

PII is encrypted here on the way in and decrypted on the way out: nothing below this module sees
plaintext e-mail, phone, name or address.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from crm_profile.domain.changes import ConsentChange, consent_changes, external_field, fold_changes, name_index_keys
from crm_profile.domain.pii import PiiVault
from crm_profile.domain.records import CustomerStats, IdentityChange, IdentityWrite
from crm_profile.repository.base import Queries

_LOCK_CONSENTS = text("""
    SELECT customer_id, consent_email, consent_sms FROM customers
    WHERE customer_id = ANY(CAST(:ids AS text[])) FOR UPDATE
""")

# A null means "not sent", never "erase" (erasure is a privacy command of its own).
_UPSERT = text("""
    INSERT INTO customers AS c (customer_id, email_enc, email_bidx, phone_enc, phone_bidx, name_enc, address_enc,
                                birthday, gender, city, registered_at,
                                consent_email, consent_email_at, consent_email_source,
                                consent_sms, consent_sms_at, consent_sms_source, locale, time_zone)
    SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:email_encs AS bytea[]), CAST(:email_bidxs AS bytea[]),
                CAST(:phone_encs AS bytea[]), CAST(:phone_bidxs AS bytea[]), CAST(:name_encs AS bytea[]),
                CAST(:address_encs AS bytea[]), CAST(:birthdays AS date[]), CAST(:genders AS text[]),
                CAST(:cities AS text[]), CAST(:registered_ats AS timestamptz[]),
                CAST(:consent_emails AS boolean[]), CAST(:consent_email_ats AS timestamptz[]),
                CAST(:consent_email_sources AS text[]), CAST(:consent_smss AS boolean[]),
                CAST(:consent_sms_ats AS timestamptz[]), CAST(:consent_sms_sources AS text[]),
                CAST(:locales AS text[]), CAST(:time_zones AS text[]))
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
        locale               = CASE WHEN c.erased_at IS NULL THEN COALESCE(excluded.locale, c.locale) END,
        time_zone            = CASE WHEN c.erased_at IS NULL THEN COALESCE(excluded.time_zone, c.time_zone) END,
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


_MERGED_INTO = text("""
    SELECT customer_id, merged_into FROM customers
    WHERE customer_id = ANY(CAST(:ids AS text[])) AND merged_into IS NOT NULL
""")
_SPEND_OF = text("""
    SELECT customer_id, currency, amount - refunded AS amount FROM customer_spend
    WHERE customer_id = ANY(CAST(:ids AS text[]))
""")
_STATISTICS = text("""
    SELECT customer_id, order_count, first_order_at, last_order_at FROM customers
    WHERE customer_id = ANY(CAST(:ids AS text[])) ORDER BY customer_id
""")
_SET_EXTERNAL_ID = text("""
    INSERT INTO customer_external_ids (customer_id, kind, value_enc, value_bidx, source)
    VALUES (:customer_id, :kind, :value_enc, :value_bidx, :source)
    ON CONFLICT (customer_id, kind) DO UPDATE SET value_enc = excluded.value_enc, value_bidx = excluded.value_bidx,
        source = excluded.source, added_at = now()
""")
_EXTERNAL_IDS = text("SELECT kind, value_enc FROM customer_external_ids WHERE customer_id = :customer_id ORDER BY kind")
_LOCK_FOR_EDIT = text("SELECT birthday, erased_at FROM customers WHERE customer_id = :customer_id FOR UPDATE")
_LIVE_AMONG = text("""
    SELECT customer_id FROM customers
    WHERE customer_id = ANY(CAST(:ids AS text[])) AND erased_at IS NULL ORDER BY customer_id FOR UPDATE
""")
_EXISTS = text("SELECT 1 FROM customers WHERE customer_id = :customer_id")
_ERASED_AMONG = text("""
    SELECT customer_id FROM customers WHERE customer_id = ANY(CAST(:ids AS text[])) AND erased_at IS NOT NULL
""")


def _stats(rows) -> list[CustomerStats]:
    return [CustomerStats(r.customer_id, r.order_count, r.first_order_at, r.last_order_at) for r in rows]


class CustomerQueries(Queries):
    async def write_identities(self, vault: PiiVault, changes: list[IdentityChange]) -> IdentityWrite:
        """Apply identity changes in order (one statement per kind of row, whatever their number).

        Every consent change is recorded with its time and source, also when one batch holds
        several changes of the same customer. Returns the customers' statistics and the consent
        changes recorded (for the use case to announce)."""
        if not changes:
            return IdentityWrite([], [])
        tx = self.connection
        ids = sorted({c.customer_id for c in changes})
        current = {row.customer_id: {"email": row.consent_email, "sms": row.consent_sms}
                   for row in await tx.execute(_LOCK_CONSENTS, {"ids": ids})}
        consent_rows, last_consent = consent_changes(current, changes)
        rows = list(fold_changes(changes).values())

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
            "locales": [r.locale for r in rows], "time_zones": [r.time_zone for r in rows],
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
            await tx.execute(_INDEX_NAMES, {"prefixes": [p for p, _ in pairs],
                                            "customer_ids": [c for _, c in pairs]})
        for r in rows:
            if r.tags is not None:
                await tx.execute(_SET_TAGS, {"customer_id": r.customer_id, "tags": r.tags})
        # Consent changes of erased customers are not announced: their events came scrubbed (no
        # consents), so none is here but an agent's, which update_profile refuses.
        return IdentityWrite(_stats(statistics), [ConsentChange(*row) for row in consent_rows])

    async def live_customers_among(self, customer_ids: list[str]) -> set[str]:
        """The ids among these of profiles that exist and were not erased, locked (an unsubscribe
        applies to them only)."""
        return {row.customer_id for row in await self.connection.execute(_LIVE_AMONG, {"ids": customer_ids})}

    async def load_profile(self, vault: PiiVault, customer_id: str) -> dict[str, Any] | None:
        """The customer's row with PII decrypted and spend per currency (amounts as text); one statement."""
        row = (await self.connection.execute(_PROFILE, {"customer_id": customer_id})).mappings().first()
        if row is None:
            return None
        profile = dict(row)
        for name in ("email", "phone", "name", "address"):
            profile[name] = vault.open(name, profile.pop(f"{name}_enc"))
        return profile

    async def search_customer_ids(self, by: str, key: Any, *, after: str, limit: int,
                                  kind: str | None = None) -> list[str]:
        """Customer ids matching one criterion, in id order after ``after`` (keyset pagination)."""
        params = {"key": key, "after": after, "limit": limit}
        if kind is not None:
            params["kind"] = kind
        return [row.customer_id for row in await self.connection.execute(_SEARCH[by], params)]

    async def survivors_of(self, customer_ids: list[str]) -> dict[str, str]:
        """Merged ids among ``customer_ids`` and the profile each now is: a survivor merged into a
        third profile later passes its duplicates on (A into B, then B into C: A is C)."""
        tx = self.connection
        current = {row.customer_id: row.merged_into
                   for row in await tx.execute(_MERGED_INTO, {"ids": customer_ids})}
        resolved = dict(current)
        for _ in range(8):
            step = {row.customer_id: row.merged_into
                    for row in await tx.execute(_MERGED_INTO, {"ids": sorted(set(current.values()))})} \
                if current else {}
            current = {origin: step[now] for origin, now in current.items() if now in step}
            if not current:
                break
            resolved.update(current)
        return resolved

    async def net_spend_of(self, customer_ids: list[str]) -> dict[str, dict[str, Decimal]]:
        """Paid minus refunded, per customer and currency."""
        spend: dict[str, dict[str, Decimal]] = defaultdict(dict)
        for row in await self.connection.execute(_SPEND_OF, {"ids": customer_ids}):
            spend[row.customer_id][row.currency] = row.amount
        return spend

    async def statistics_of(self, customer_ids: list[str]) -> list[CustomerStats]:
        return _stats(await self.connection.execute(_STATISTICS, {"ids": customer_ids}))

    async def set_external_ids(self, vault: PiiVault, customer_id: str, ids: dict[str, str], source: str) -> None:
        """Add or replace a customer's external identifiers (one per kind), encrypted and indexed."""
        for kind, value in ids.items():
            await self.connection.execute(_SET_EXTERNAL_ID, {
                "customer_id": customer_id, "kind": kind, "source": source,
                "value_enc": vault.seal(external_field(kind), value),
                "value_bidx": vault.index(external_field(kind), value)})

    async def external_ids_of(self, vault: PiiVault, customer_id: str) -> dict[str, str]:
        return {row.kind: vault.open(external_field(row.kind), row.value_enc)
                for row in await self.connection.execute(_EXTERNAL_IDS, {"customer_id": customer_id})}

    async def lock_for_edit(self, customer_id: str) -> tuple[Any, Any] | None:
        """(birthday, erased_at) of the customer, locked; None for an unknown customer."""
        row = (await self.connection.execute(_LOCK_FOR_EDIT, {"customer_id": customer_id})).first()
        return None if row is None else (row.birthday, row.erased_at)

    async def customer_exists(self, customer_id: str) -> bool:
        return (await self.connection.execute(_EXISTS, {"customer_id": customer_id})).first() is not None

    async def erased_among(self, customer_ids: list[str]) -> set[str]:
        return {row.customer_id for row in await self.connection.execute(_ERASED_AMONG, {"ids": customer_ids})}
