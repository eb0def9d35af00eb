"""Journal of PII key rotations: which key the data is under, and whether a rotation is unfinished.

Written by ``crm-profile-rotate-pii-key`` (pii_rotation.py); read by the service at start, which
refuses to run while a rotation is unfinished or with a PII_KEY other than the one the data was
last rotated to. Key ids are derived from the keys (one-way), never the keys.

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE pii_key_rotations (
            id          bigserial   PRIMARY KEY,
            old_key_id  text        NOT NULL,
            new_key_id  text        NOT NULL,
            started_at  timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,            -- null: in progress, or interrupted
            report      jsonb                   -- counts only: rows, batches, seconds
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE pii_key_rotations")
