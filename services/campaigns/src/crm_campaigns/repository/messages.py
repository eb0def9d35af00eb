"""Messages and their delivery status, suppressed addresses, and the reads of the public links.
Repositories never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text

from crm_campaigns.repository.base import Sql

FINAL = ("sent", "delivered", "bounced", "failed", "opened", "clicked", "unsubscribed", "suppressed", "skipped")
# The column each status stamps; a later status never clears an earlier one's time.
STAMPS = {"sent": "sent_at", "delivered": "delivered_at", "opened": "opened_at", "clicked": "clicked_at",
          "bounced": "bounced_at", "unsubscribed": "unsubscribed_at"}

_START = text("""
    INSERT INTO messages (message_id, campaign_id, occurrence_key, customer_id, channel, locale, status, attempts,
                          lease_until, created_at)
    VALUES (:message_id, :campaign_id, :occurrence_key, :customer_id, :channel, :locale, 'sending', 1,
            :lease_until, :at)
    ON CONFLICT (message_id) DO UPDATE SET status = 'sending', attempts = messages.attempts + 1,
                                           lease_until = excluded.lease_until, locale = excluded.locale
        WHERE messages.status IN ('queued', 'sending')
    RETURNING attempts
""")
_STATUS = text("SELECT status, attempts FROM messages WHERE message_id = :message_id")
_SET_STATUS = {status: text(f"""
    UPDATE messages SET status = :status, lease_until = NULL, last_error = :error,
        address_digest = COALESCE(:digest, address_digest), next_attempt_at = :next_attempt_at
        {f", {column} = COALESCE({column}, :at)" if column else ""}
    WHERE message_id = :message_id RETURNING campaign_id, customer_id, channel
""") for status, column in {**{s: STAMPS.get(s) for s in FINAL}, "queued": None}.items()}
# Provider callbacks: a status moves forward only (an "opened" never goes back to "delivered").
_RANK = {"sending": 0, "queued": 0, "sent": 1, "delivered": 2, "opened": 3, "clicked": 4, "bounced": 5,
         "failed": 5, "unsubscribed": 6}
_PROGRESS = text("""
    UPDATE messages SET status = CASE WHEN :rank > (CASE status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2
                                    WHEN 'opened' THEN 3 WHEN 'clicked' THEN 4 WHEN 'bounced' THEN 5
                                    WHEN 'failed' THEN 5 WHEN 'unsubscribed' THEN 6 ELSE 0 END)
                                 THEN :status ELSE status END,
        delivered_at = CASE WHEN :status IN ('delivered', 'opened', 'clicked') THEN COALESCE(delivered_at, :at)
                            ELSE delivered_at END,
        opened_at = CASE WHEN :status IN ('opened', 'clicked') THEN COALESCE(opened_at, :at) ELSE opened_at END,
        clicked_at = CASE WHEN :status = 'clicked' THEN COALESCE(clicked_at, :at) ELSE clicked_at END,
        bounced_at = CASE WHEN :status = 'bounced' THEN COALESCE(bounced_at, :at) ELSE bounced_at END,
        unsubscribed_at = CASE WHEN :status = 'unsubscribed' THEN COALESCE(unsubscribed_at, :at)
                               ELSE unsubscribed_at END
    WHERE message_id = :message_id AND status NOT IN ('queued', 'sending', 'suppressed', 'skipped')
    RETURNING message_id, campaign_id, customer_id, channel, status, address_digest
""")
_MESSAGE = text("""SELECT message_id, campaign_id, occurrence_key, customer_id, channel, status, address_digest
                   FROM messages WHERE message_id = :message_id""")
_RECENT_SENDS = text("""SELECT count(*) FROM messages WHERE customer_id = :customer_id AND channel = :channel
                        AND sent_at >= :since""")
_SUPPRESSED = text("SELECT EXISTS (SELECT 1 FROM suppressions WHERE channel = :channel AND address_digest = :digest)")
_SUPPRESS = text("""INSERT INTO suppressions (channel, address_digest, reason, message_id, at)
                    VALUES (:channel, :digest, :reason, :message_id, :at) ON CONFLICT DO NOTHING""")


class MessagesSql(Sql):
    async def start_message(self, row: dict[str, Any]) -> int | None:
        """Record an attempt of the message (``None``: it already reached a final status)."""
        return (await self.conn.execute(_START, row)).scalar()

    async def message_status(self, message_id: str) -> str | None:
        row = (await self.conn.execute(_STATUS, {"message_id": message_id})).first()
        return row.status if row is not None else None

    async def set_message_status(self, message_id: str, status: str, *, at: datetime, error: str | None = None,
                                 digest: bytes | None = None, next_attempt_at: datetime | None = None) -> Any:
        return (await self.conn.execute(_SET_STATUS[status], {
            "message_id": message_id, "status": status, "at": at, "error": error, "digest": digest,
            "next_attempt_at": next_attempt_at})).first()

    async def progress_message(self, message_id: str, status: str, at: datetime) -> Any:
        """A provider's news about a message; ``None`` for an unknown message or one never sent."""
        return (await self.conn.execute(_PROGRESS, {"message_id": message_id, "status": status,
                                                    "rank": _RANK[status], "at": at})).first()

    async def message(self, message_id: str) -> Any:
        return (await self.conn.execute(_MESSAGE, {"message_id": message_id})).first()

    async def recent_sends(self, customer_id: str, channel: str, since: datetime) -> int:
        return (await self.conn.execute(_RECENT_SENDS, {"customer_id": customer_id, "channel": channel,
                                                        "since": since})).scalar_one()

    async def is_suppressed(self, channel: str, digest: bytes) -> bool:
        return (await self.conn.execute(_SUPPRESSED, {"channel": channel, "digest": digest})).scalar_one()

    async def suppress(self, channel: str, digest: bytes, *, reason: str, message_id: str | None,
                       at: datetime) -> None:
        await self.conn.execute(_SUPPRESS, {"channel": channel, "digest": digest, "reason": reason,
                                            "message_id": message_id, "at": at})

    async def metrics_snapshot(self) -> dict[str, Any]:
        messages = await self.conn.execute(text("SELECT channel, status, count(*) AS n FROM messages "
                                                "GROUP BY channel, status"))
        campaigns = await self.conn.execute(text("SELECT status, count(*) AS n FROM campaigns GROUP BY status"))
        pending = await self.conn.execute(text("SELECT count(*) FROM contacts WHERE state = 'pending'"))
        return {"messages": {(r.channel, r.status): r.n for r in messages},
                "campaigns": {r.status: r.n for r in campaigns}, "pending": pending.scalar_one()}
