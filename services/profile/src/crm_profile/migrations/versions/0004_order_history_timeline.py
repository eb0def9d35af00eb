"""Order history with items and refunds, categories bought, and the interaction timeline.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An order now exists from `placed` on; it counts in the statistics once it is paid.
    op.execute("ALTER TABLE orders ALTER COLUMN paid_at DROP NOT NULL")
    op.execute("""
        ALTER TABLE orders
            ADD COLUMN status          text          NOT NULL DEFAULT 'paid'
                CHECK (status IN ('placed', 'paid', 'completed', 'cancelled', 'refunded', 'partially_refunded')),
            ADD COLUMN placed_at       timestamptz,
            ADD COLUMN completed_at    timestamptz,
            ADD COLUMN cancelled_at    timestamptz,
            ADD COLUMN refunded_amount numeric(18,4) NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
            ADD COLUMN channel         text,
            ADD COLUMN items           jsonb         NOT NULL DEFAULT '[]',
            ADD CONSTRAINT refund_within_total CHECK (refunded_amount <= total_amount)""")
    op.execute("CREATE INDEX orders_by_customer_time ON orders (customer_id, COALESCE(paid_at, placed_at) DESC)")
    # Paid and refunded per currency, and how many paid orders: net spend and average order value.
    op.execute("""
        ALTER TABLE customer_spend
            ADD COLUMN refunded    numeric(18,4) NOT NULL DEFAULT 0,
            ADD COLUMN order_count integer       NOT NULL DEFAULT 0""")
    op.execute("UPDATE customer_spend s SET order_count = (SELECT count(*) FROM orders o "
               "WHERE o.customer_id = s.customer_id AND o.currency = s.currency)")
    op.execute("ALTER TABLE customers ADD COLUMN refunded_order_count integer NOT NULL DEFAULT 0")
    op.execute("""
        CREATE TABLE customer_categories (
            customer_id     text        NOT NULL,
            category        text        NOT NULL,
            quantity        integer     NOT NULL,
            first_bought_at timestamptz NOT NULL,
            last_bought_at  timestamptz NOT NULL,
            PRIMARY KEY (customer_id, category)
        )""")
    # One line per thing that happened to a customer: interactions, orders, and (as the other
    # services emit them) tickets, points and churn warnings.
    op.execute("""
        CREATE TABLE timeline (
            id          bigserial   PRIMARY KEY,
            customer_id text        NOT NULL,
            occurred_at timestamptz NOT NULL,
            kind        text        NOT NULL,   -- e.g. interaction.product_view, order.paid
            channel     text,
            details     jsonb       NOT NULL DEFAULT '{}',
            event_id    text        NOT NULL
        )""")
    op.execute("CREATE INDEX timeline_by_customer ON timeline (customer_id, occurred_at DESC, id DESC)")


def downgrade() -> None:
    op.execute("DROP TABLE timeline")
    op.execute("DROP TABLE customer_categories")
    op.execute("ALTER TABLE customers DROP COLUMN refunded_order_count")
    op.execute("ALTER TABLE customer_spend DROP COLUMN refunded, DROP COLUMN order_count")
    op.execute("DROP INDEX orders_by_customer_time")
    op.execute("""
        ALTER TABLE orders DROP CONSTRAINT refund_within_total, DROP COLUMN status, DROP COLUMN placed_at,
            DROP COLUMN completed_at, DROP COLUMN cancelled_at, DROP COLUMN refunded_amount, DROP COLUMN channel,
            DROP COLUMN items""")
    op.execute("DELETE FROM orders WHERE paid_at IS NULL")
    op.execute("ALTER TABLE orders ALTER COLUMN paid_at SET NOT NULL")
