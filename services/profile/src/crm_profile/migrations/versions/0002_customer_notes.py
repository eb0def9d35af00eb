"""Agents' notes on a customer, and stored answers for Idempotency-Key.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
from crm_shared.idempotency import create_idempotency_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE customer_notes (
            note_id     uuid        PRIMARY KEY,
            customer_id text        NOT NULL REFERENCES customers (customer_id),
            author      text        NOT NULL,
            body        text        NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX customer_notes_by_customer ON customer_notes (customer_id, created_at DESC)")
    create_idempotency_table()


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys")
    op.execute("DROP TABLE customer_notes")
