"""Erasure: the customers the profile erased (a tombstone: nothing new about them is recorded).

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
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
