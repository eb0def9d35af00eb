"""Tables of the churn database: exactly what migrations/ builds (0002: history, models, scores;
the shared bus, erasure and merge tables). The drift test (tests/service/shared/test_schema_drift.py)
holds the two together; the queries are set-based SQL in repository/."""

from __future__ import annotations

from crm_shared.tables import add_bus_tables, add_erased_customers, add_merge_table
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
add_bus_tables(metadata)
add_erased_customers(metadata)
add_merge_table(metadata)

TIME = DateTime(timezone=True)
MONEY = Numeric(14, 4)

orders = Table(
    "churn_orders", metadata,
    Column("order_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("paid_at", TIME, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total_amount", MONEY, nullable=False),
    Column("refunded_amount", MONEY, nullable=False, server_default="0"),
    Column("cancelled_at", TIME),
    CheckConstraint("refunded_amount <= total_amount"),
    Index("churn_orders_customer", "customer_id", "paid_at"),
    Index("churn_orders_paid_at", "paid_at"))

activity = Table(
    "churn_activity", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("events", Integer, nullable=False),
    CheckConstraint("events > 0"))

tickets = Table(
    "churn_tickets", metadata,
    Column("ticket_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("opened_at", TIME, nullable=False),
    Column("resolved_at", TIME),
    Column("breached_at", TIME),
    Index("churn_tickets_customer", "customer_id"))

csat = Table(
    "churn_csat", metadata,
    Column("ticket_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("score", SmallInteger, nullable=False),
    Column("submitted_at", TIME, nullable=False),
    CheckConstraint("score BETWEEN 1 AND 5"),
    Index("churn_csat_customer", "customer_id", "submitted_at"))

# Bumped by every event that changes a customer's history, in the same transaction; a score from an
# older version never replaces a newer one.
customers = Table(
    "churn_customers", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("history_version", BigInteger, nullable=False))

models = Table(
    "churn_models", metadata,
    Column("version", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("report", JSONB, nullable=False),
    Column("trained_at", TIME, nullable=False),
    Column("duration_s", Float(53), nullable=False),
    Column("created_by", Text, nullable=False))
Index("churn_models_trained_at", models.c.trained_at.desc())

scores = Table(
    "churn_scores", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("score", Float(53), nullable=False),
    Column("level", Text, nullable=False),
    Column("previous_level", Text),
    Column("level_changed_at", TIME, nullable=False),
    Column("p_alive", Float(53), nullable=False),
    Column("expected_orders_90d", Float(53), nullable=False),
    Column("one_time_buyer", Boolean, nullable=False),
    Column("value_12m", MONEY, nullable=False),
    Column("value_at_risk", MONEY, nullable=False),
    Column("currency", Text),
    Column("reasons", JSONB, nullable=False),
    Column("indicators", JSONB, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("history_version", BigInteger, nullable=False),
    Column("scored_at", TIME, nullable=False),
    CheckConstraint("score BETWEEN 0 AND 1"),
    CheckConstraint("level IN ('low', 'medium', 'high')"))
# GET /v1/churn/customers?level=…&sort=value_at_risk pages through these.
Index("churn_scores_level_value", scores.c.level, scores.c.value_at_risk.desc(), scores.c.customer_id)
Index("churn_scores_level_score", scores.c.level, scores.c.score.desc(), scores.c.customer_id)
