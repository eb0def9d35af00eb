"""Tables of the tickets database, exactly as the migrations build them (the drift test holds the
two together). The queries are SQL text in repository/ (set-based, PostgreSQL-specific: full-text
search, SKIP LOCKED)."""

from __future__ import annotations

from crm_shared.tables import add_bus_tables, add_erased_customers, add_idempotency_table, add_merge_table
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

metadata = MetaData()
add_bus_tables(metadata)
add_idempotency_table(metadata)
add_erased_customers(metadata)
add_merge_table(metadata)

_ACTIVE = text("status IN ('new', 'open', 'pending_customer')")


def _time(name: str, **kw) -> Column:
    return Column(name, DateTime(True), **kw)


tickets = Table(
    "tickets", metadata,
    Column("ticket_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("order_id", Text),
    Column("items", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("kind", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("category", Text),
    Column("subcategory", Text),
    Column("subject", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''::text")),
    Column("priority", Text, nullable=False),
    Column("priority_overridden", Boolean, nullable=False, server_default=text("false")),
    Column("status", Text, nullable=False, server_default=text("'new'::text")),
    Column("group_id", Text),
    Column("assignee", Text),
    Column("tier", Text),
    Column("churn_level", Text),
    Column("root_cause", Text),
    Column("created_by", Text, nullable=False),
    _time("created_at", nullable=False),
    _time("first_response_at"),
    _time("resolved_at"),
    _time("closed_at"),
    Column("reopened_count", Integer, nullable=False, server_default=text("0")),
    _time("first_response_due_at"),
    _time("first_response_warn_at"),
    _time("resolution_due_at"),
    _time("resolution_warn_at"),
    Column("resolution_left_s", Float(53)),
    _time("fr_warning_sent_at"),
    _time("fr_breached_at"),
    _time("res_warning_sent_at"),
    _time("res_breached_at"),
    _time("updated_at", nullable=False, server_default=text("now()")),
    Index("tickets_by_customer", "customer_id", text("created_at DESC")),
    Index("tickets_by_assignee", "assignee", postgresql_where=_ACTIVE),
    Index("tickets_listing", text("created_at DESC"), text("ticket_id DESC")),
    *(Index(f"tickets_{column}", column, postgresql_where=_ACTIVE)
      for column in ("first_response_warn_at", "first_response_due_at", "resolution_warn_at", "resolution_due_at")),
)

ticket_history = Table(
    "ticket_history", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("ticket_id", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("changes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _time("at", nullable=False),
    Index("ticket_history_by_ticket", "ticket_id", "id"),
)

ticket_comments = Table(
    "ticket_comments", metadata,
    Column("comment_id", Text, primary_key=True),
    Column("ticket_id", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("author_role", Text, nullable=False),
    Column("public", Boolean, nullable=False),
    Column("body", Text, nullable=False),
    Column("article_id", Text),
    _time("created_at", nullable=False),
    Index("ticket_comments_by_ticket", "ticket_id", "created_at"),
)

ticket_attachments = Table(
    "ticket_attachments", metadata,
    Column("attachment_id", Text, primary_key=True),
    Column("ticket_id", Text, nullable=False),
    Column("filename", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("url", Text, nullable=False),
    Column("uploaded_by", Text, nullable=False),
    _time("created_at", nullable=False),
)

agent_groups = Table(
    "agent_groups", metadata,
    Column("group_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("skills", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("strategy", Text, nullable=False),
    Column("last_agent", Text),
    CheckConstraint("strategy IN ('round_robin', 'least_loaded')"),
)

agents = Table(
    "agents", metadata,
    Column("agent_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("groups", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("available", Boolean, nullable=False, server_default=text("true")),
    Column("active_tickets", Integer, nullable=False, server_default=text("0")),
    CheckConstraint("active_tickets >= 0"),
)

csat = Table(
    "csat", metadata,
    Column("ticket_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("score", Integer, nullable=False),
    Column("comment", Text),
    Column("agent", Text),
    Column("group_id", Text),
    _time("submitted_at", nullable=False),
    Column("recorded_by", Text),
    CheckConstraint("score BETWEEN 1 AND 5"),
)

articles = Table(
    "articles", metadata,
    Column("article_id", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("category", Text),
    Column("search", TSVECTOR, Computed(
        "setweight(to_tsvector('simple', title), 'A') || to_tsvector('simple', body)", persisted=True)),
    Column("updated_by", Text, nullable=False),
    _time("updated_at", nullable=False),
    Index("articles_search", "search", postgresql_using="gin"),
)

customer_levels = Table(
    "customer_levels", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("tier", Text),
    Column("churn_level", Text),
    _time("follow_up_at"),
)

policy = Table(
    "policy", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("config", JSONB, nullable=False),
    Column("created_by", Text, nullable=False),
    _time("created_at", nullable=False, server_default=text("now()")),
)

metric_totals = Table(
    "metric_totals", metadata,
    Column("metric", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("value", BigInteger, nullable=False),
    PrimaryKeyConstraint("metric", "label"),
    CheckConstraint("value >= 0"),
)
