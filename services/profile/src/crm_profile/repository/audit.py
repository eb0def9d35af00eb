"""The privacy journal: who saw whose PII in clear, privacy requests, and the data export's rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from crm_profile.models import pii_access_log
from crm_profile.repository.base import Queries

_AUDIT = text("""
    INSERT INTO pii_access_log (actor, role, customer_id, fields, reason, request_id)
    VALUES (:actor, :role, :customer_id, :fields, :reason, :request_id)
""")
_RECORD_REQUEST = text("""
    INSERT INTO privacy_requests (customer_id, kind, actor, role, reason)
    VALUES (:customer_id, :kind, :actor, :role, :reason)
""")
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


class AuditQueries(Queries):
    async def record_pii_access(self, *, actor: str, role: str, customer_id: str, fields: list[str],
                                reason: str, request_id: str | None) -> None:
        await self.connection.execute(_AUDIT, {"actor": actor, "role": role, "customer_id": customer_id,
                                               "fields": fields, "reason": reason, "request_id": request_id})

    async def record_privacy_request(self, *, customer_id: str, kind: str, actor: str, role: str,
                                     reason: str) -> None:
        await self.connection.execute(_RECORD_REQUEST, {"customer_id": customer_id, "kind": kind, "actor": actor,
                                                        "role": role, "reason": reason})

    async def export_related(self, customer_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every other table's rows about the customer, for the data export."""
        return {name: [dict(row) for row in
                       (await self.connection.execute(query, {"customer_id": customer_id})).mappings()]
                for name, query in _EXPORT_QUERIES.items()}

    async def pii_access_page(self, *, customer_id: str | None, actor: str | None, before: int | None,
                              limit: int) -> list[dict[str, Any]]:
        """Entries of the PII access log, newest first, ids below ``before``; up to ``limit``."""
        query = select(pii_access_log).order_by(pii_access_log.c.id.desc()).limit(limit)
        if customer_id is not None:
            query = query.where(pii_access_log.c.customer_id == customer_id)
        if actor is not None:
            query = query.where(pii_access_log.c.actor == actor)
        if before is not None:
            query = query.where(pii_access_log.c.id < before)
        return [dict(row._mapping) for row in await self.connection.execute(query)]
