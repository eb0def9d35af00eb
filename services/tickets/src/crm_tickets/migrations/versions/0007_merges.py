"""Following profile merges: the merges in force and which tickets each moved.

Revision ID: 0007
Revises: 0006
"""
from crm_shared.merges import create_merge_table, drop_merge_table

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_merge_table()


def downgrade() -> None:
    drop_merge_table()
