"""What a campaign did and what it changed: its contacts, messages and actions counted, the
conversions of its treatment and control groups, a campaign's messages page by page, and a
customer's recent campaign contacts (the 360 view). Reads only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text

from crm_campaigns.repository.base import Sql

_CONTACTS = text("""
    SELECT group_name, state, skip_reason, count(*) AS n FROM contacts WHERE campaign_id = :campaign_id
    GROUP BY group_name, state, skip_reason""")
# A message counts at every stage it reached (the timestamps), not only at its latest status.
_MESSAGES = text("""
    SELECT count(*) FILTER (WHERE sent_at IS NOT NULL) AS sent,
           count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered,
           count(*) FILTER (WHERE opened_at IS NOT NULL) AS opened,
           count(*) FILTER (WHERE clicked_at IS NOT NULL) AS clicked,
           count(*) FILTER (WHERE bounced_at IS NOT NULL OR status = 'bounced') AS bounced,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE unsubscribed_at IS NOT NULL OR status = 'unsubscribed') AS unsubscribed,
           count(*) FILTER (WHERE status = 'suppressed') AS suppressed
    FROM messages WHERE campaign_id = :campaign_id""")
_ACTIONS = text("""
    SELECT count(*) FILTER (WHERE kind = 'coupon') AS coupons_issued,
           (SELECT count(DISTINCT u.coupon_id) FROM coupon_uses u
            WHERE NOT u.released AND u.coupon_id IN (SELECT reference FROM action_results
                                                    WHERE campaign_id = :campaign_id AND kind = 'coupon')
           ) AS coupons_redeemed,
           COALESCE(sum(points), 0) AS points_granted
    FROM action_results WHERE campaign_id = :campaign_id""")
# Per customer of the treatment (acted on) and the control (recorded, not acted on): converted if
# an order of theirs, not cancelled, was paid within conversion_days after one of their contacts;
# an order inside two windows counts once. Revenue sums only orders in the one currency asked.
_OUTCOMES = text("""
    WITH exposed AS (
        SELECT customer_id, group_name, contacted_at FROM contacts
        WHERE campaign_id = :campaign_id AND state = 'done' AND group_name IN ('treatment', 'control')
          AND contacted_at IS NOT NULL),
    orders AS (
        SELECT DISTINCT e.group_name, e.customer_id, v.order_id, v.currency, v.amount
        FROM exposed e JOIN conversions v ON v.customer_id = e.customer_id AND NOT v.cancelled
             AND v.paid_at > e.contacted_at AND v.paid_at <= e.contacted_at + make_interval(days => :days)),
    per_customer AS (
        SELECT c.group_name, c.customer_id, count(o.order_id) > 0 AS converted,
               COALESCE(sum(o.amount) FILTER (WHERE o.currency = :currency), 0) AS revenue
        FROM (SELECT DISTINCT group_name, customer_id FROM exposed) c
        LEFT JOIN orders o USING (group_name, customer_id) GROUP BY c.group_name, c.customer_id)
    SELECT group_name, count(*) AS customers, count(*) FILTER (WHERE converted) AS converted,
           COALESCE(sum(revenue), 0) AS revenue, COALESCE(sum(revenue * revenue), 0) AS revenue_sq
    FROM per_customer GROUP BY group_name""")
_MESSAGE_PAGE = text("""
    SELECT message_id, customer_id, occurrence_key, channel, locale, status, attempts, last_error, created_at,
           sent_at, delivered_at, opened_at, clicked_at, bounced_at, unsubscribed_at
    FROM messages
    WHERE campaign_id = :campaign_id AND (CAST(:status AS text) IS NULL OR status = :status)
      AND (CAST(:after_at AS timestamptz) IS NULL OR (created_at, message_id) < (:after_at, :after_id))
    ORDER BY created_at DESC, message_id DESC LIMIT :limit""")
_CUSTOMER_CONTACTS = text("""
    SELECT k.campaign_id, c.name AS campaign_name, t.channel, k.group_name AS "group",
           COALESCE(m.status, k.state) AS status, COALESCE(k.contacted_at, k.created_at) AS contacted_at
    FROM contacts k JOIN campaigns c USING (campaign_id)
    LEFT JOIN templates t ON t.template_id = c.template_id
    LEFT JOIN messages m ON (m.campaign_id, m.occurrence_key, m.customer_id, m.channel)
                          = (k.campaign_id, k.occurrence_key, k.customer_id, t.channel)
    WHERE k.customer_id = :customer_id
    ORDER BY COALESCE(k.contacted_at, k.created_at) DESC, k.campaign_id LIMIT :limit""")


class ResultsSql(Sql):
    async def contact_counts(self, campaign_id: str) -> list[dict[str, Any]]:
        """(group_name, state, skip_reason, n) rows."""
        return [dict(r._mapping) for r in await self.conn.execute(_CONTACTS, {"campaign_id": campaign_id})]

    async def message_counts(self, campaign_id: str) -> dict[str, int]:
        return dict((await self.conn.execute(_MESSAGES, {"campaign_id": campaign_id})).one()._mapping)

    async def action_counts(self, campaign_id: str) -> dict[str, int]:
        return dict((await self.conn.execute(_ACTIONS, {"campaign_id": campaign_id})).one()._mapping)

    async def group_outcomes(self, campaign_id: str, *, conversion_days: int, currency: str) -> dict[str, Any]:
        """{group_name: row(customers, converted, revenue, revenue_sq)} for treatment and control."""
        rows = await self.conn.execute(_OUTCOMES, {"campaign_id": campaign_id, "days": conversion_days,
                                                   "currency": currency})
        return {r.group_name: r for r in rows}

    async def campaign_messages(self, campaign_id: str, *, status: str | None, after: tuple[datetime, str] | None,
                                limit: int) -> list[dict[str, Any]]:
        """Newest first; ``after``: the (created_at, message_id) of the last row of the previous page."""
        after_at, after_id = after if after is not None else (None, "")
        rows = await self.conn.execute(_MESSAGE_PAGE, {"campaign_id": campaign_id, "status": status,
                                                       "after_at": after_at, "after_id": after_id, "limit": limit})
        return [dict(r._mapping) for r in rows]

    async def customer_contacts(self, customer_id: str, limit: int) -> list[dict[str, Any]]:
        rows = await self.conn.execute(_CUSTOMER_CONTACTS, {"customer_id": customer_id, "limit": limit})
        return [dict(r._mapping) for r in rows]
