"""Following profile merges: the merges in force and which tickets each moved.

Revision ID: 0004
Revises: 0003
"""
from crm_shared.merges import create_merge_table, drop_merge_table

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_merge_table()


def downgrade() -> None:
    drop_merge_table()
