"""Each agent's count of active tickets, kept with every assignment and status change.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Least-loaded assignment reads this instead of counting tickets under the queue's lock:
    # the count grows with the open tickets and was paid at every assignment (bench/tickets.py,
    # docs/benchmarks.md).
    op.execute("ALTER TABLE agents ADD COLUMN active_tickets integer NOT NULL DEFAULT 0 CHECK (active_tickets >= 0)")
    op.execute("""
        UPDATE agents a SET active_tickets = (
            SELECT count(*) FROM tickets t
            WHERE t.assignee = a.agent_id AND t.status IN ('new', 'open', 'pending_customer'))""")


def downgrade() -> None:
    op.execute("ALTER TABLE agents DROP COLUMN active_tickets")
