"""The members' projection: what the other services announce about a customer, without PII.

Each statement takes a whole batch (``executemany``); a customer missing from ``members`` is
created by the first event about them. Repositories never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from crm_shared import erasure, merges
from sqlalchemy import text

from crm_campaigns.repository.base import Sql

_ENSURE = text("INSERT INTO members (customer_id) VALUES (:customer_id) ON CONFLICT DO NOTHING")
_CUSTOMER = text("""
    UPDATE members SET locale = COALESCE(:locale, locale), time_zone = COALESCE(:time_zone, time_zone),
        birthday_month = COALESCE(:birthday_month, birthday_month),
        birthday_day = COALESCE(:birthday_day, birthday_day),
        registered_on = COALESCE(:registered_on, registered_on),
        consent_email = COALESCE(:consent_email, consent_email), consent_sms = COALESCE(:consent_sms, consent_sms),
        updated_at = now()
    WHERE customer_id = :customer_id
""")
_CONSENT = {channel: text(f"UPDATE members SET consent_{channel} = :granted, updated_at = now() "
                          "WHERE customer_id = :customer_id") for channel in ("email", "sms")}
_BIRTHDAY = text("UPDATE members SET birthday_month = :month, birthday_day = :day, updated_at = now() "
                 "WHERE customer_id = :customer_id")
_STATISTICS = text("""
    UPDATE members SET order_count = :order_count, value = :value,
        last_order_at = GREATEST(last_order_at, :last_order_at), updated_at = now()
    WHERE customer_id = :customer_id
""")
_SEGMENT_IN = text("""
    UPDATE members SET segments = array_append(segments, :segment_id), updated_at = now()
    WHERE customer_id = :customer_id AND NOT (:segment_id = ANY(segments))
""")
_SEGMENT_OUT = text("UPDATE members SET segments = array_remove(segments, :segment_id), updated_at = now() "
                    "WHERE customer_id = :customer_id")
_TIER = text("UPDATE members SET tier = :tier, updated_at = now() WHERE customer_id = :customer_id")
_POINTS = text("UPDATE members SET points_available = :available, updated_at = now() WHERE customer_id = :customer_id")
_CHURN = text("UPDATE members SET churn_level = :level, churn_score = :score, updated_at = now() "
              "WHERE customer_id = :customer_id")
_ORDER = text("""
    UPDATE members SET last_order_at = GREATEST(last_order_at, :paid_at),
        categories = ARRAY(SELECT DISTINCT unnest(categories || CAST(:categories AS text[]))), updated_at = now()
    WHERE customer_id = :customer_id
""")
_CONVERSION = text("""
    INSERT INTO conversions (order_id, customer_id, paid_at, currency, amount)
    VALUES (:order_id, :customer_id, :paid_at, :currency, :amount) ON CONFLICT (order_id) DO NOTHING
""")
_CANCELLED = text("UPDATE conversions SET cancelled = true WHERE order_id = :order_id")
_REFUNDED = text("UPDATE conversions SET amount = GREATEST(amount - :refund, 0) WHERE order_id = :order_id")
_COUPON_USED = text("""INSERT INTO coupon_uses (coupon_id, order_id, used_at) VALUES (:coupon_id, :order_id, :at)
                       ON CONFLICT DO NOTHING""")
_COUPON_RELEASED = text("UPDATE coupon_uses SET released = true WHERE coupon_id = :coupon_id AND order_id = :order_id")
_ERASE = (
    text("DELETE FROM members WHERE customer_id = ANY(CAST(:ids AS text[]))"),
    text("""UPDATE contacts SET state = 'skipped', skip_reason = 'erased'
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND state = 'pending'"""),
    text("""UPDATE messages SET status = 'skipped', last_error = 'erased'
            WHERE customer_id = ANY(CAST(:ids AS text[])) AND status IN ('queued', 'sending')"""),
)
_MOVE_DUPLICATE = text("DELETE FROM members WHERE customer_id = :duplicate")


class MembersSql(Sql):
    async def ensure_members(self, customer_ids: Sequence[str]) -> None:
        unique = sorted(set(customer_ids))
        if unique:
            await self.conn.execute(_ENSURE, [{"customer_id": c} for c in unique])

    async def _batch(self, statement, rows: Sequence[dict[str, Any]]) -> None:
        # An erased customer is never projected again: later events about them store nothing.
        erased = await self.erased_among([r["customer_id"] for r in rows]) if rows else set()
        rows = [r for r in rows if r["customer_id"] not in erased]
        if rows:
            await self.ensure_members([r["customer_id"] for r in rows])
            await self.conn.execute(statement, rows)

    async def set_customer_facts(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._batch(_CUSTOMER, rows)

    async def set_consents(self, channel: str, rows: Sequence[dict[str, Any]]) -> None:
        await self._batch(_CONSENT[channel], rows)

    async def set_birthdays(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._batch(_BIRTHDAY, rows)

    async def set_statistics(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._batch(_STATISTICS, rows)

    async def change_segments(self, rows: Sequence[dict[str, Any]], *, entered: bool) -> None:
        await self._batch(_SEGMENT_IN if entered else _SEGMENT_OUT, rows)

    async def set_tiers(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._batch(_TIER, rows)

    async def set_points(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._batch(_POINTS, rows)

    async def set_churn(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._batch(_CHURN, rows)

    async def record_orders(self, rows: Sequence[dict[str, Any]]) -> None:
        """Paid orders: the members' last order and categories, and the conversions lift counts."""
        if rows:
            await self._batch(_ORDER, [{k: r[k] for k in ("customer_id", "paid_at", "categories")} for r in rows])
            await self.conn.execute(_CONVERSION, [{k: r[k] for k in ("order_id", "customer_id", "paid_at", "currency",
                                                                    "amount")} for r in rows])

    async def cancel_orders(self, order_ids: Sequence[str]) -> None:
        if order_ids:
            await self.conn.execute(_CANCELLED, [{"order_id": o} for o in order_ids])

    async def refund_orders(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.conn.execute(_REFUNDED, list(rows))

    async def record_coupon_uses(self, rows: Sequence[dict[str, Any]], *, released: bool) -> None:
        if rows:
            await self.conn.execute(_COUPON_RELEASED if released else _COUPON_USED, list(rows))

    async def erase_members(self, erased_at: dict[str, datetime]) -> None:
        ids = await erasure.record_erased(self.conn, erased_at)
        if ids:
            for statement in _ERASE:
                await self.conn.execute(statement, {"ids": ids})

    async def erased_among(self, customer_ids: Sequence[str]) -> set[str]:
        return await erasure.erased_among(self.conn, customer_ids)

    async def follow_merge(self, *, survivor: str, duplicate: str, at: datetime, event_id: str) -> bool:
        """Once per merge: the duplicate's projection goes (the survivor's comes from the services'
        events about it); contacts and messages keep the ids they were made for."""
        merge_id = await merges.claim_merge(self.conn, survivor=survivor, duplicate=duplicate, at=at,
                                            event_id=event_id)
        if merge_id is None:
            return False
        await self.conn.execute(_MOVE_DUPLICATE, {"duplicate": duplicate})
        return True

    async def follow_unmerge(self, *, survivor: str, duplicate: str, at: datetime) -> None:
        record = await merges.lock_merge_in_force(self.conn, survivor=survivor, duplicate=duplicate)
        if record is not None:
            await merges.close_merge(self.conn, record.merge_id, at)
