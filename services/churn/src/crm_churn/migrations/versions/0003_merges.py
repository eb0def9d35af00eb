"""Following profile merges: the merges in force and which history each moved.

Revision ID: 0003
Revises: 0002
"""
from crm_shared.merges import create_merge_table, drop_merge_table

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_merge_table()


def downgrade() -> None:
    drop_merge_table()
