"""Erasure: the customers the profile erased (a tombstone: their later events are not recorded).

Revision ID: 0004
Revises: 0003
"""
from crm_shared.migrations import create_erased_customers, drop_erased_customers

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_erased_customers()


def downgrade() -> None:
    drop_erased_customers()
