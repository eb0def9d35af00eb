"""Following profile merges: the merges in force and what each moved; merge and unmerge ledger rows.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
from crm_shared.merges import create_merge_table, drop_merge_table

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_KINDS = "'earn', 'release', 'redeem', 'reverse', 'refund_of_spent', 'expire', 'adjust', 'bonus'"


def upgrade() -> None:
    create_merge_table()
    # A merge hands a duplicate's balances to its survivor, an unmerge hands them back: one ledger
    # row on each side, so every account still equals the sums of its own ledger.
    op.execute("ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check")
    op.execute(f"ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check CHECK (kind IN ({_KINDS}, 'merge', 'unmerge'))")


def downgrade() -> None:
    op.execute("ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check")
    op.execute(f"ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check CHECK (kind IN ({_KINDS}))")
    drop_merge_table()
