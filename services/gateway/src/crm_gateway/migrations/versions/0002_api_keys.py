"""API keys of server-side integrations: stored hashed, scoped, revocable.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE api_keys (
            key_id       text        PRIMARY KEY,
            client       text        NOT NULL,
            secret_hash  bytea       NOT NULL,   -- SHA-256 of the secret part; the key itself is never stored
            scopes       text[]      NOT NULL,
            created_by   text        NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            revoked_by   text,
            revoked_at   timestamptz
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE api_keys")
