"""Following profile merges: the merges in force and which history each moved.

Revision ID: 0005
Revises: 0004
"""
from crm_shared.merges import create_merge_table, drop_merge_table

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_merge_table()


def downgrade() -> None:
    drop_merge_table()
