"""Merging duplicate profiles: a tombstone marker and the journal of merges.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE customers ADD COLUMN merged_into text")
    op.execute("""
        CREATE TABLE profile_merges (
            id           bigserial   PRIMARY KEY,
            survivor_id  text        NOT NULL,
            merged_id    text        NOT NULL,
            identifier   text        NOT NULL CHECK (identifier IN ('email', 'phone')),
            reason       text        NOT NULL,
            actor        text        NOT NULL,
            merged_at    timestamptz NOT NULL DEFAULT now(),
            merged_stats jsonb       NOT NULL   -- the merged profile's statistics, for review
        )""")
    op.execute("CREATE INDEX profile_merges_by_survivor ON profile_merges (survivor_id, merged_at)")


def downgrade() -> None:
    op.execute("DROP TABLE profile_merges")
    op.execute("ALTER TABLE customers DROP COLUMN merged_into")
