"""Customers with identity and purchase statistics; orders; the bus tables.

Revision ID: 0001
Revises:
"""
from alembic import op
from crm_shared.migrations import create_bus_tables, drop_bus_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_bus_tables()
    op.execute("""
        CREATE TABLE customers (
            customer_id    text PRIMARY KEY,
            email          text,
            phone          text,
            name           text,
            birthday       date,
            gender         text,
            city           text,
            registered_at  timestamptz,
            consent_email  boolean,
            consent_sms    boolean,
            order_count    integer     NOT NULL DEFAULT 0 CHECK (order_count >= 0),
            first_order_at timestamptz,
            last_order_at  timestamptz,
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now()
        )""")
    # Spend per currency: a shop may sell in several, and amounts in different currencies
    # cannot be added up without a rate the CRM does not own.
    op.execute("""
        CREATE TABLE customer_spend (
            customer_id text          NOT NULL,
            currency    char(3)       NOT NULL,
            amount      numeric(18,4) NOT NULL,
            PRIMARY KEY (customer_id, currency)
        )""")
    # One row per paid order: a second "paid" for the same order (a new event id for the same
    # payment) never counts twice.
    op.execute("""
        CREATE TABLE orders (
            order_id     text PRIMARY KEY,
            customer_id  text          NOT NULL,
            currency     char(3)       NOT NULL,
            total_amount numeric(18,4) NOT NULL,
            paid_at      timestamptz   NOT NULL,
            recorded_at  timestamptz   NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX orders_customer_id ON orders (customer_id)")


def downgrade() -> None:
    op.execute("DROP TABLE orders")
    op.execute("DROP TABLE customer_spend")
    op.execute("DROP TABLE customers")
    drop_bus_tables()
