"""Undoing a merge: what each merge moved, and who undid it, when and why.

Revision ID: 0012
Revises: 0011
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ``moved``: the ids of the rows the merge moved and the names (never the values) of the fields
    # the survivor took from the duplicate, so an unmerge moves exactly those back. Merges made
    # before this revision have '{}' and cannot be undone.
    op.execute("""
        ALTER TABLE profile_merges
            ADD COLUMN moved          jsonb NOT NULL DEFAULT '{}',
            ADD COLUMN unmerged_at    timestamptz,
            ADD COLUMN unmerged_by    text,
            ADD COLUMN unmerge_reason text""")
    op.execute("CREATE INDEX profile_merges_in_force ON profile_merges (merged_id) WHERE unmerged_at IS NULL")


def downgrade() -> None:
    op.execute("DROP INDEX profile_merges_in_force")
    op.execute("ALTER TABLE profile_merges DROP COLUMN moved, DROP COLUMN unmerged_at, DROP COLUMN unmerged_by, "
               "DROP COLUMN unmerge_reason")
