"""Tickets, their history, comments, attachments, groups and agents, CSAT, articles, policy.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
from crm_shared.idempotency import create_idempotency_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE tickets (
            ticket_id              text PRIMARY KEY,
            customer_id            text        NOT NULL,
            order_id               text,
            items                  jsonb       NOT NULL DEFAULT '[]',
            kind                   text        NOT NULL,
            channel                text        NOT NULL,
            category               text,
            subcategory            text,
            subject                text        NOT NULL,
            description            text        NOT NULL DEFAULT '',
            priority               text        NOT NULL,
            priority_overridden    boolean     NOT NULL DEFAULT false,
            status                 text        NOT NULL DEFAULT 'new',
            group_id               text,
            assignee               text,
            tier                   text,
            churn_level            text,
            root_cause             text,
            created_by             text        NOT NULL,
            created_at             timestamptz NOT NULL,
            first_response_at      timestamptz,
            resolved_at            timestamptz,
            closed_at              timestamptz,
            reopened_count         integer     NOT NULL DEFAULT 0,
            -- SLA: due and warning moments; sent_at columns make each event fire exactly once.
            first_response_due_at  timestamptz,
            first_response_warn_at timestamptz,
            resolution_due_at      timestamptz,
            resolution_warn_at     timestamptz,
            resolution_left_s      double precision,   -- business seconds left, kept while paused
            fr_warning_sent_at     timestamptz,
            fr_breached_at         timestamptz,
            res_warning_sent_at    timestamptz,
            res_breached_at        timestamptz,
            updated_at             timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX tickets_by_customer ON tickets (customer_id, created_at DESC)")
    op.execute("CREATE INDEX tickets_by_assignee ON tickets (assignee) "
               "WHERE status IN ('new', 'open', 'pending_customer')")
    op.execute("CREATE INDEX tickets_listing ON tickets (created_at DESC, ticket_id DESC)")
    for column in ("first_response_warn_at", "first_response_due_at", "resolution_warn_at", "resolution_due_at"):
        op.execute(f"CREATE INDEX tickets_{column} ON tickets ({column}) "
                   f"WHERE status IN ('new', 'open', 'pending_customer')")
    op.execute("""
        CREATE TABLE ticket_history (
            id         bigserial PRIMARY KEY,
            ticket_id  text        NOT NULL,
            actor      text        NOT NULL,
            action     text        NOT NULL,
            changes    jsonb       NOT NULL DEFAULT '{}',
            at         timestamptz NOT NULL
        )""")
    op.execute("CREATE INDEX ticket_history_by_ticket ON ticket_history (ticket_id, id)")
    op.execute("""
        CREATE TABLE ticket_comments (
            comment_id  text PRIMARY KEY,
            ticket_id   text        NOT NULL,
            author      text        NOT NULL,
            author_role text        NOT NULL,
            public      boolean     NOT NULL,
            body        text        NOT NULL,
            article_id  text,
            created_at  timestamptz NOT NULL
        )""")
    op.execute("CREATE INDEX ticket_comments_by_ticket ON ticket_comments (ticket_id, created_at)")
    op.execute("""
        CREATE TABLE ticket_attachments (
            attachment_id text PRIMARY KEY,
            ticket_id     text        NOT NULL,
            filename      text        NOT NULL,
            content_type  text        NOT NULL,
            size_bytes    bigint      NOT NULL,
            url           text        NOT NULL,
            uploaded_by   text        NOT NULL,
            created_at    timestamptz NOT NULL
        )""")
    op.execute("""
        CREATE TABLE agent_groups (
            group_id   text PRIMARY KEY,
            name       text    NOT NULL,
            skills     text[]  NOT NULL DEFAULT '{}',   -- the categories this queue handles
            strategy   text    NOT NULL CHECK (strategy IN ('round_robin', 'least_loaded')),
            last_agent text                              -- round-robin cursor
        )""")
    op.execute("""
        CREATE TABLE agents (
            agent_id   text PRIMARY KEY,
            name       text    NOT NULL,
            groups     text[]  NOT NULL DEFAULT '{}',
            available  boolean NOT NULL DEFAULT true
        )""")
    op.execute("""
        CREATE TABLE csat (
            ticket_id    text PRIMARY KEY,
            customer_id  text        NOT NULL,
            score        integer     NOT NULL CHECK (score BETWEEN 1 AND 5),
            comment      text,
            agent        text,
            group_id     text,
            submitted_at timestamptz NOT NULL
        )""")
    op.execute("""
        CREATE TABLE articles (
            article_id text PRIMARY KEY,
            title      text        NOT NULL,
            body       text        NOT NULL,
            category   text,
            search     tsvector GENERATED ALWAYS AS (
                           setweight(to_tsvector('simple', title), 'A') || to_tsvector('simple', body)) STORED,
            updated_by text        NOT NULL,
            updated_at timestamptz NOT NULL
        )""")
    op.execute("CREATE INDEX articles_search ON articles USING gin (search)")
    op.execute("""
        CREATE TABLE customer_levels (
            customer_id  text PRIMARY KEY,
            tier         text,
            churn_level  text,
            follow_up_at timestamptz        -- the last follow-up task created for a churn warning
        )""")
    op.execute("""
        CREATE TABLE policy (
            version    integer PRIMARY KEY,
            config     jsonb       NOT NULL,
            created_by text        NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    create_idempotency_table()


def downgrade() -> None:
    for table in ("idempotency_keys", "policy", "customer_levels", "articles", "csat", "agents", "agent_groups",
                  "ticket_attachments", "ticket_comments", "ticket_history", "tickets"):
        op.execute(f"DROP TABLE {table}")
