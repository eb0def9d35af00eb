"""Erasure in the archive: the profiles one erasure covers, and the removal of their personal data.

Which profiles an erasure covers and what a late event may no longer carry is domain/erasure.py.
"""

from __future__ import annotations

from datetime import datetime

from crm_shared.idempotency import forget_answers
from sqlalchemy import text

from crm_profile.domain.records import GroupMember
from crm_profile.repository.base import Queries

# The profile a (possibly merged) id ends in, following merged_into upwards.
_SURVIVOR_OF = text("""
    WITH RECURSIVE up(customer_id, merged_into, depth) AS (
        SELECT customer_id, merged_into, 0 FROM customers WHERE customer_id = :customer_id
        UNION ALL
        SELECT c.customer_id, c.merged_into, up.depth + 1
        FROM up JOIN customers c ON c.customer_id = up.merged_into WHERE up.depth < 100
    )
    SELECT customer_id FROM up WHERE merged_into IS NULL
""")
# The survivor and every profile merged into it, directly or through another duplicate (the merge
# journal is indexed by survivor; merged_into says whether the merge still stands), locked.
_GROUP = text("""
    WITH RECURSIVE grp(customer_id) AS (
        SELECT CAST(:survivor AS text)
        UNION
        SELECT c.customer_id FROM grp
        JOIN profile_merges m ON m.survivor_id = grp.customer_id
        JOIN customers c ON c.customer_id = m.merged_id AND c.merged_into = grp.customer_id
    )
    SELECT c.customer_id, c.erased_at, c.merged_into FROM customers c JOIN grp USING (customer_id)
    ORDER BY c.customer_id FOR UPDATE OF c
""")

# PII and free text go; ids, order dates, amounts, categories and the kinds and times of timeline
# entries stay, so the shop's statistics do not change. Interaction attributes may hold free text
# (search terms, chat snippets); a points movement's reason may be an agent's words.
# Before the consents are set to false: each one that was not false yet goes into the consent
# history (source erasure) and is returned, for the use case to announce.
_WITHDRAW_CONSENTS = text("""
    INSERT INTO consent_changes (customer_id, channel, granted, changed_at, source)
    SELECT c.customer_id, ch.channel, false, :at, 'erasure'
    FROM customers c
    CROSS JOIN LATERAL (VALUES ('email', c.consent_email), ('sms', c.consent_sms)) AS ch(channel, granted)
    WHERE c.customer_id = ANY(CAST(:ids AS text[])) AND ch.granted IS DISTINCT FROM false
    RETURNING customer_id, channel
""")
_ERASE = [
    text("""UPDATE customers SET email_enc = NULL, email_bidx = NULL, phone_enc = NULL, phone_bidx = NULL,
                                 name_enc = NULL, address_enc = NULL, birthday = NULL, gender = NULL, city = NULL,
                                 locale = NULL, time_zone = NULL,
                                 tags = '{}', consent_email = false, consent_sms = false,
                                 consent_email_at = :at, consent_sms_at = :at,
                                 consent_email_source = 'erasure', consent_sms_source = 'erasure',
                                 erased_at = COALESCE(erased_at, :at), updated_at = now()
            WHERE customer_id = ANY(CAST(:ids AS text[]))"""),
    text("DELETE FROM customer_name_index WHERE customer_id = ANY(CAST(:ids AS text[]))"),
    text("DELETE FROM customer_external_ids WHERE customer_id = ANY(CAST(:ids AS text[]))"),
    text("DELETE FROM customer_notes WHERE customer_id = ANY(CAST(:ids AS text[]))"),
    text("""UPDATE timeline SET details = '{}'
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND kind LIKE 'interaction.%' AND details <> '{}'"""),
    text("""UPDATE timeline SET details = details - 'reason'
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND kind LIKE 'loyalty.points.%' AND details ? 'reason'"""),
    # A supervisor's words about why two profiles are one person (often the shared contact data).
    text("""UPDATE profile_merges SET reason = '(erased)'
            WHERE survivor_id = ANY(CAST(:ids AS text[])) OR merged_id = ANY(CAST(:ids AS text[]))"""),
]


class ErasureQueries(Queries):
    async def survivor_of(self, customer_id: str) -> str | None:
        """The profile a (possibly merged) id ends in; None for an unknown id or a merge cycle."""
        return (await self.connection.execute(_SURVIVOR_OF, {"customer_id": customer_id})).scalar()

    async def lock_erasure_group(self, survivor: str) -> list[GroupMember]:
        """The survivor and every profile merged into it (directly or through another duplicate), locked."""
        return [GroupMember(*row) for row in await self.connection.execute(_GROUP, {"survivor": survivor})]

    async def erase_profiles(self, customer_ids: list[str], at: datetime) -> list[tuple[str, str]]:
        """Remove the personal data of these profiles and mark them erased; the ``(customer, channel)``
        consents this withdrew (those not withdrawn before), in order."""
        withdrawn = await self.connection.execute(_WITHDRAW_CONSENTS, {"ids": customer_ids, "at": at})
        consents = sorted((row.customer_id, row.channel) for row in withdrawn)
        for statement in _ERASE:
            await self.connection.execute(statement, {"ids": customer_ids, "at": at})
        # Stored answers of earlier commands (notes, merges) may quote what was erased.
        await forget_answers(self.connection, field="customer_id", values=customer_ids)
        return consents
