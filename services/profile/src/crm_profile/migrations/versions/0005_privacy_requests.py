"""Erasure marker on customers and the journal of privacy requests (exports and erasures).

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An erased customer keeps its id and anonymous statistics; PII sent for it later is dropped.
    op.execute("ALTER TABLE customers ADD COLUMN erased_at timestamptz")
    op.execute("""
        CREATE TABLE privacy_requests (
            id           bigserial   PRIMARY KEY,
            customer_id  text        NOT NULL,
            kind         text        NOT NULL CHECK (kind IN ('export', 'erasure')),
            actor        text        NOT NULL,
            role         text        NOT NULL,
            reason       text        NOT NULL,
            requested_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX privacy_requests_by_customer ON privacy_requests (customer_id, requested_at)")


def downgrade() -> None:
    op.execute("DROP TABLE privacy_requests")
    op.execute("ALTER TABLE customers DROP COLUMN erased_at")
