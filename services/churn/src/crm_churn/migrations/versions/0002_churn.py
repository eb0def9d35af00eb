"""The churn service's history, models and scores.

Revision ID: 0002
Revises: 0001

The history tables keep what the features need *with their times*, so that the features of any
past moment can be computed again: that is what the time-split training and backtest rest on.
Interactions are kept as daily counts (activity windows need no more), orders and tickets one row
each (inter-purchase intervals, open tickets at a moment).
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE churn_orders (
            order_id         text PRIMARY KEY,
            customer_id      text NOT NULL,
            paid_at          timestamptz NOT NULL,
            currency         text NOT NULL,
            total_amount     numeric(14, 4) NOT NULL,
            refunded_amount  numeric(14, 4) NOT NULL DEFAULT 0 CHECK (refunded_amount <= total_amount),
            cancelled_at     timestamptz
        )""")
    op.execute("CREATE INDEX churn_orders_customer ON churn_orders (customer_id, paid_at)")
    op.execute("CREATE INDEX churn_orders_paid_at ON churn_orders (paid_at)")
    op.execute("""
        CREATE TABLE churn_activity (
            customer_id  text NOT NULL,
            day          date NOT NULL,
            events       integer NOT NULL CHECK (events > 0),
            PRIMARY KEY (customer_id, day)
        )""")
    op.execute("""
        CREATE TABLE churn_tickets (
            ticket_id    text PRIMARY KEY,
            customer_id  text NOT NULL,
            kind         text NOT NULL,
            opened_at    timestamptz NOT NULL,
            resolved_at  timestamptz,
            breached_at  timestamptz
        )""")
    op.execute("CREATE INDEX churn_tickets_customer ON churn_tickets (customer_id)")
    op.execute("""
        CREATE TABLE churn_csat (
            ticket_id     text PRIMARY KEY,
            customer_id   text NOT NULL,
            score         smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
            submitted_at  timestamptz NOT NULL
        )""")
    op.execute("CREATE INDEX churn_csat_customer ON churn_csat (customer_id, submitted_at)")
    # Bumped by every event that changes a customer's history, in the same transaction. A score
    # records the version it was computed from, and a score from an older version never replaces
    # a newer one: a refit's rescoring chunk that read the history just before a consumer
    # transaction committed must not overwrite the score that transaction wrote.
    op.execute("""
        CREATE TABLE churn_customers (
            customer_id      text PRIMARY KEY,
            history_version  bigint NOT NULL
        )""")
    op.execute("""
        CREATE TABLE churn_models (
            version      text PRIMARY KEY,
            kind         text NOT NULL,
            params       jsonb NOT NULL,
            report       jsonb NOT NULL,
            trained_at   timestamptz NOT NULL,
            duration_s   double precision NOT NULL,
            created_by   text NOT NULL
        )""")
    op.execute("CREATE INDEX churn_models_trained_at ON churn_models (trained_at DESC)")
    op.execute("""
        CREATE TABLE churn_scores (
            customer_id          text PRIMARY KEY,
            score                double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
            level                text NOT NULL CHECK (level IN ('low', 'medium', 'high')),
            previous_level       text,
            level_changed_at     timestamptz NOT NULL,
            p_alive              double precision NOT NULL,
            expected_orders_90d  double precision NOT NULL,
            one_time_buyer       boolean NOT NULL,
            value_12m            numeric(14, 4) NOT NULL,
            value_at_risk        numeric(14, 4) NOT NULL,
            currency             text,
            reasons              jsonb NOT NULL,
            indicators           jsonb NOT NULL,
            model_version        text NOT NULL,
            history_version      bigint NOT NULL,
            scored_at            timestamptz NOT NULL
        )""")
    # GET /v1/churn/customers?level=…&sort=value_at_risk pages through these.
    op.execute("CREATE INDEX churn_scores_level_value ON churn_scores (level, value_at_risk DESC, customer_id)")
    op.execute("CREATE INDEX churn_scores_level_score ON churn_scores (level, score DESC, customer_id)")


def downgrade() -> None:
    for table in ("churn_scores", "churn_models", "churn_customers", "churn_csat", "churn_tickets", "churn_activity",
                  "churn_orders"):
        op.execute(f"DROP TABLE {table}")
