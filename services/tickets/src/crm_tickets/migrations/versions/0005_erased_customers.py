"""Erasure: the customers the profile erased (a tombstone: nothing new about them is recorded).

Revision ID: 0005
Revises: 0004
"""
from crm_shared.migrations import create_erased_customers, drop_erased_customers

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_erased_customers()


def downgrade() -> None:
    drop_erased_customers()
