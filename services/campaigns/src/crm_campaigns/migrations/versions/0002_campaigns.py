"""Audiences, templates, campaigns, their occurrences, contacts and messages; the members'
projection; suppressions; the orders that count as conversions; the actions' results.

Revision ID: 0002
Revises: 0001

A contact is unique per (campaign, occurrence, customer): that key is what makes a campaign act
at most once per customer per occurrence, through restarts and replicas. A message is unique per
contact and channel.
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE members (
            customer_id       text PRIMARY KEY,
            locale            text,
            time_zone         text,
            birthday_month    smallint,
            birthday_day      smallint,
            registered_on     date,
            consent_email     boolean NOT NULL DEFAULT false,
            consent_sms       boolean NOT NULL DEFAULT false,
            tier              text,
            points_available  integer,
            churn_level       text,
            churn_score       double precision,
            order_count       integer NOT NULL DEFAULT 0,
            value             numeric(14, 4) NOT NULL DEFAULT 0,
            last_order_at     timestamptz,
            categories        text[] NOT NULL DEFAULT '{}'::text[],
            segments          text[] NOT NULL DEFAULT '{}'::text[],
            updated_at        timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX members_birthday ON members (birthday_month, birthday_day)")
    op.execute("CREATE INDEX members_segments ON members USING gin (segments)")
    op.execute("""
        CREATE TABLE audiences (
            audience_id  text PRIMARY KEY,
            name         text NOT NULL,
            definition   jsonb NOT NULL,
            version      integer NOT NULL DEFAULT 1,
            created_by   text NOT NULL,
            created_at   timestamptz NOT NULL,
            updated_at   timestamptz NOT NULL
        )""")
    op.execute("""
        CREATE TABLE templates (
            template_id  text PRIMARY KEY,
            name         text NOT NULL,
            channel      text NOT NULL CONSTRAINT templates_channel
                         CHECK (channel IN ('email', 'sms', 'webhook', 'notification')),
            contents     jsonb NOT NULL,
            version      integer NOT NULL DEFAULT 1,
            created_by   text NOT NULL,
            created_at   timestamptz NOT NULL,
            updated_at   timestamptz NOT NULL
        )""")
    op.execute("""
        CREATE TABLE campaigns (
            campaign_id     text PRIMARY KEY,
            name            text NOT NULL,
            kind            text NOT NULL CONSTRAINT campaigns_kind
                            CHECK (kind IN ('one_shot', 'recurring', 'triggered')),
            status          text NOT NULL DEFAULT 'draft' CONSTRAINT campaigns_status
                            CHECK (status IN ('draft', 'awaiting_approval', 'active', 'paused', 'completed')),
            audience_id     text,
            template_id     text,
            schedule        jsonb NOT NULL DEFAULT '{}'::jsonb,
            actions         jsonb NOT NULL DEFAULT '[]'::jsonb,
            rules           jsonb NOT NULL DEFAULT '{}'::jsonb,
            estimated_size  integer,
            approved_by     text,
            approved_at     timestamptz,
            version         integer NOT NULL DEFAULT 1,
            created_by      text NOT NULL,
            created_at      timestamptz NOT NULL,
            updated_at      timestamptz NOT NULL
        )""")
    op.execute("CREATE INDEX campaigns_by_status ON campaigns (status, kind)")
    op.execute("""
        CREATE TABLE occurrences (
            campaign_id     text NOT NULL,
            occurrence_key  text NOT NULL,
            planned_at      timestamptz NOT NULL,
            contacts        integer NOT NULL DEFAULT 0,
            cursor          text NOT NULL DEFAULT '',
            complete        boolean NOT NULL DEFAULT false,
            PRIMARY KEY (campaign_id, occurrence_key)
        )""")
    op.execute("""
        CREATE TABLE contacts (
            campaign_id     text NOT NULL,
            occurrence_key  text NOT NULL,
            customer_id     text NOT NULL,
            group_name      text NOT NULL CONSTRAINT contacts_group
                            CHECK (group_name IN ('treatment', 'control', 'holdout')),
            state           text NOT NULL DEFAULT 'pending' CONSTRAINT contacts_state
                            CHECK (state IN ('pending', 'done', 'skipped')),
            skip_reason     text,
            due_at          timestamptz NOT NULL,
            lease_until     timestamptz,
            created_at      timestamptz NOT NULL,
            contacted_at    timestamptz,
            actions_done    jsonb NOT NULL DEFAULT '{}'::jsonb,
            attributes      jsonb NOT NULL DEFAULT '{}'::jsonb,
            attempts        integer NOT NULL DEFAULT 0,
            PRIMARY KEY (campaign_id, occurrence_key, customer_id)
        )""")
    op.execute("CREATE INDEX contacts_due ON contacts (due_at) WHERE state = 'pending'")
    op.execute("CREATE INDEX contacts_customer ON contacts (customer_id, created_at)")
    op.execute("""
        CREATE TABLE messages (
            message_id       text PRIMARY KEY,
            campaign_id      text NOT NULL,
            occurrence_key   text NOT NULL,
            customer_id      text NOT NULL,
            channel          text NOT NULL,
            locale           text,
            status           text NOT NULL CONSTRAINT messages_status
                             CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'bounced', 'failed', 'opened',
                                               'clicked', 'unsubscribed', 'suppressed', 'skipped')),
            attempts         integer NOT NULL DEFAULT 0,
            next_attempt_at  timestamptz,
            lease_until      timestamptz,
            address_digest   bytea,
            last_error       text,
            created_at       timestamptz NOT NULL,
            sent_at          timestamptz,
            delivered_at     timestamptz,
            opened_at        timestamptz,
            clicked_at       timestamptz,
            bounced_at       timestamptz,
            unsubscribed_at  timestamptz
        )""")
    op.execute("""CREATE UNIQUE INDEX messages_one_per_contact
                  ON messages (campaign_id, occurrence_key, customer_id, channel)""")
    op.execute("CREATE INDEX messages_customer_sent ON messages (customer_id, channel, sent_at)")
    op.execute("CREATE INDEX messages_campaign ON messages (campaign_id, status)")
    op.execute("""
        CREATE TABLE suppressions (
            channel         text NOT NULL,
            address_digest  bytea NOT NULL,
            reason          text NOT NULL,
            message_id      text,
            at              timestamptz NOT NULL,
            PRIMARY KEY (channel, address_digest)
        )""")
    op.execute("""
        CREATE TABLE conversions (
            order_id     text PRIMARY KEY,
            customer_id  text NOT NULL,
            paid_at      timestamptz NOT NULL,
            currency     text NOT NULL,
            amount       numeric(14, 4) NOT NULL,
            cancelled    boolean NOT NULL DEFAULT false
        )""")
    op.execute("CREATE INDEX conversions_customer ON conversions (customer_id, paid_at)")
    op.execute("""
        CREATE TABLE action_results (
            campaign_id     text NOT NULL,
            occurrence_key  text NOT NULL,
            customer_id     text NOT NULL,
            kind            text NOT NULL,
            reference       text,
            points          integer,
            at              timestamptz NOT NULL,
            PRIMARY KEY (campaign_id, occurrence_key, customer_id, kind)
        )""")
    op.execute("""
        CREATE TABLE coupon_uses (
            coupon_id  text NOT NULL,
            order_id   text NOT NULL,
            used_at    timestamptz NOT NULL,
            released   boolean NOT NULL DEFAULT false,
            PRIMARY KEY (coupon_id, order_id)
        )""")


def downgrade() -> None:
    for table in ("coupon_uses", "action_results", "conversions", "suppressions", "messages", "contacts",
                  "occurrences", "campaigns", "templates", "audiences", "members"):
        op.execute(f"DROP TABLE {table}")
