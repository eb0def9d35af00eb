"""Running totals for counters whose source rows can change back: SLA breaches.

A reopened ticket clears its resolution breach (and may breach again), so counting the marked
tickets goes down; Prometheus reads a counter that goes down as a reset. The scan adds what it
marks to ``metric_totals`` in its own transaction, so the total only ever goes up.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE metric_totals (
            metric text   NOT NULL,
            label  text   NOT NULL,
            value  bigint NOT NULL CHECK (value >= 0),
            PRIMARY KEY (metric, label)
        )""")
    # Breaches marked before this release: those still on their tickets (cleared ones are gone).
    op.execute("""
        INSERT INTO metric_totals (metric, label, value)
        SELECT 'sla_breaches', 'first_response', count(fr_breached_at) FROM tickets
        UNION ALL
        SELECT 'sla_breaches', 'resolution', count(res_breached_at) FROM tickets""")


def downgrade() -> None:
    op.execute("DROP TABLE metric_totals")
