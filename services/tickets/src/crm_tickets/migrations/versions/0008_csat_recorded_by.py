"""Who recorded a CSAT answer: null when the customer rated the ticket, else the agent who took it
on the phone.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE csat ADD COLUMN recorded_by text")


def downgrade() -> None:
    op.execute("ALTER TABLE csat DROP COLUMN recorded_by")
