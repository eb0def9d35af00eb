"""Adjustments above an agent's limit, asked for by the agent and decided by a supervisor.

Revision ID: 0011
Revises: 0010
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per request; the decision is written in the transaction that applies the adjustment
    # (entry_id), under the account's lock, so a request is applied at most once.
    op.execute("""
        CREATE TABLE adjustment_requests (
            seq           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            customer_id   text        NOT NULL,
            points        bigint      NOT NULL CHECK (points <> 0),
            reason        text        NOT NULL,
            ticket_id     text,
            requested_by  text        NOT NULL,
            requested_at  timestamptz NOT NULL,
            status        text        NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled')),
            decided_by    text,
            decided_at    timestamptz,
            note          text,
            entry_id      bigint
        )""")
    op.execute("CREATE INDEX adjustment_requests_pending ON adjustment_requests (seq) WHERE status = 'pending'")
    op.execute("CREATE INDEX adjustment_requests_customer ON adjustment_requests (customer_id)")


def downgrade() -> None:
    op.execute("DROP TABLE adjustment_requests")
