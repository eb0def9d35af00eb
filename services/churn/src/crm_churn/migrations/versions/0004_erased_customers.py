"""Erasure: the customers the profile erased (a tombstone: their later events are not recorded).

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE erased_customers (
            customer_id text PRIMARY KEY,
            erased_at   timestamptz NOT NULL
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE erased_customers")
