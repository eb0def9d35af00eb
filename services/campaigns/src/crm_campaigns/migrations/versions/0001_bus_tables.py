"""The shared tables: outbox and inbox, erased customers, merges, stored answers.

Revision ID: 0001
Revises:
"""
from alembic import op
from crm_shared.idempotency import create_idempotency_table
from crm_shared.merges import create_merge_table, drop_merge_table
from crm_shared.migrations import (
    create_bus_tables,
    create_erased_customers,
    drop_bus_tables,
    drop_erased_customers,
    key_inbox_by_event_type,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_bus_tables()
    key_inbox_by_event_type()
    create_erased_customers()
    create_merge_table()
    create_idempotency_table()


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys")
    drop_merge_table()
    drop_erased_customers()
    drop_bus_tables()
