"""Tables of the campaigns database: exactly what migrations/ builds (0002). The drift test
(tests/service/shared/test_schema_drift.py) holds the two together; the queries are in repository/.

No personal data is kept here: ``members`` is a projection of what the other services announce
(ids, consents, locale and time zone, birthday month and day, tier, points, churn level, value,
segments), contacts are read from the profile at send time, and a suppressed address is kept as a
keyed digest only.
"""

from __future__ import annotations

from crm_shared.tables import add_bus_tables, add_erased_customers, add_idempotency_table, add_merge_table
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()
add_bus_tables(metadata)
add_erased_customers(metadata)
add_merge_table(metadata)
add_idempotency_table(metadata)

TIME = DateTime(timezone=True)
MONEY = Numeric(14, 4)
EMPTY_TEXTS = text("'{}'::text[]")

members = Table(
    "members", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("locale", Text), Column("time_zone", Text),
    Column("birthday_month", SmallInteger), Column("birthday_day", SmallInteger),
    Column("registered_on", Date),
    Column("consent_email", Boolean, nullable=False, server_default=text("false")),
    Column("consent_sms", Boolean, nullable=False, server_default=text("false")),
    Column("tier", Text), Column("points_available", Integer),
    Column("churn_level", Text), Column("churn_score", Float),
    Column("order_count", Integer, nullable=False, server_default=text("0")),
    Column("value", MONEY, nullable=False, server_default=text("0")),
    Column("last_order_at", TIME),
    Column("categories", ARRAY(Text), nullable=False, server_default=EMPTY_TEXTS),
    Column("segments", ARRAY(Text), nullable=False, server_default=EMPTY_TEXTS),
    Column("updated_at", TIME, nullable=False, server_default=text("now()")),
    Index("members_birthday", "birthday_month", "birthday_day"),
    Index("members_segments", "segments", postgresql_using="gin"))

audiences = Table(
    "audiences", metadata,
    Column("audience_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("definition", JSONB, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_by", Text, nullable=False),
    Column("created_at", TIME, nullable=False), Column("updated_at", TIME, nullable=False))

templates = Table(
    "templates", metadata,
    Column("template_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("contents", JSONB, nullable=False),  # {locale: {subject, html, text, body}}
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_by", Text, nullable=False),
    Column("created_at", TIME, nullable=False), Column("updated_at", TIME, nullable=False),
    CheckConstraint("channel IN ('email', 'sms', 'webhook', 'notification')", name="templates_channel"))

campaigns = Table(
    "campaigns", metadata,
    Column("campaign_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'draft'")),
    Column("audience_id", Text),
    Column("template_id", Text),
    Column("schedule", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("actions", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("rules", JSONB, nullable=False, server_default=text("'{}'::jsonb")),  # caps, quiet hours, control
    Column("estimated_size", Integer),
    Column("approved_by", Text), Column("approved_at", TIME),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_by", Text, nullable=False),
    Column("created_at", TIME, nullable=False), Column("updated_at", TIME, nullable=False),
    CheckConstraint("kind IN ('one_shot', 'recurring', 'triggered')", name="campaigns_kind"),
    CheckConstraint("status IN ('draft', 'awaiting_approval', 'active', 'paused', 'completed')",
                    name="campaigns_status"),
    Index("campaigns_by_status", "status", "kind"))

occurrences = Table(
    "occurrences", metadata,
    Column("campaign_id", Text, primary_key=True),
    Column("occurrence_key", Text, primary_key=True),  # once, birthday:2026-12-07@Asia/Shanghai, …
    Column("planned_at", TIME, nullable=False),
    Column("contacts", Integer, nullable=False, server_default=text("0")),
    # Planning goes by pages of customer ids; a restart goes on after the last page committed.
    Column("cursor", Text, nullable=False, server_default=text("''")),
    Column("complete", Boolean, nullable=False, server_default=text("false")))

contacts = Table(
    "contacts", metadata,
    Column("campaign_id", Text, primary_key=True),
    Column("occurrence_key", Text, primary_key=True),
    Column("customer_id", Text, primary_key=True),
    Column("group_name", Text, nullable=False),
    Column("state", Text, nullable=False, server_default=text("'pending'")),
    Column("skip_reason", Text),
    Column("due_at", TIME, nullable=False),
    Column("lease_until", TIME),
    Column("created_at", TIME, nullable=False),
    Column("contacted_at", TIME),  # when the treatment was acted on, or the control was recorded
    Column("actions_done", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # What the triggering event said (points expiring and when, the segment…): no PII.
    Column("attributes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    CheckConstraint("group_name IN ('treatment', 'control', 'holdout')", name="contacts_group"),
    CheckConstraint("state IN ('pending', 'done', 'skipped')", name="contacts_state"),
    Index("contacts_due", "due_at", postgresql_where=text("state = 'pending'")),
    Index("contacts_customer", "customer_id", "created_at"))

messages = Table(
    "messages", metadata,
    Column("message_id", Text, primary_key=True),
    Column("campaign_id", Text, nullable=False),
    Column("occurrence_key", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("locale", Text),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", TIME),
    Column("lease_until", TIME),
    Column("address_digest", LargeBinary),  # keyed digest of the address it went to (bounces suppress it)
    Column("last_error", Text),
    Column("created_at", TIME, nullable=False),
    Column("sent_at", TIME), Column("delivered_at", TIME), Column("opened_at", TIME),
    Column("clicked_at", TIME), Column("bounced_at", TIME), Column("unsubscribed_at", TIME),
    CheckConstraint("status IN ('queued', 'sending', 'sent', 'delivered', 'bounced', 'failed', 'opened', 'clicked', "
                    "'unsubscribed', 'suppressed', 'skipped')", name="messages_status"),
    Index("messages_one_per_contact", "campaign_id", "occurrence_key", "customer_id", "channel", unique=True),
    Index("messages_customer_sent", "customer_id", "channel", "sent_at"),
    Index("messages_campaign", "campaign_id", "status"))

suppressions = Table(
    "suppressions", metadata,
    Column("channel", Text, primary_key=True),
    Column("address_digest", LargeBinary, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("message_id", Text),
    Column("at", TIME, nullable=False))

conversions = Table(
    "conversions", metadata,
    Column("order_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("paid_at", TIME, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount", MONEY, nullable=False),
    Column("cancelled", Boolean, nullable=False, server_default=text("false")),
    Index("conversions_customer", "customer_id", "paid_at"))

action_results = Table(
    "action_results", metadata,
    Column("campaign_id", Text, primary_key=True),
    Column("occurrence_key", Text, primary_key=True),
    Column("customer_id", Text, primary_key=True),
    Column("kind", Text, primary_key=True),  # coupon, bonus_points, callback_task
    Column("reference", Text),               # coupon_id, ledger entry, ticket_id (never a code)
    Column("points", Integer),
    Column("at", TIME, nullable=False))

# Coupons a campaign issued that an order used (crm.loyalty.coupon.used / .released).
coupon_uses = Table(
    "coupon_uses", metadata,
    Column("coupon_id", Text, primary_key=True),
    Column("order_id", Text, primary_key=True),
    Column("used_at", TIME, nullable=False),
    Column("released", Boolean, nullable=False, server_default=text("false")))
