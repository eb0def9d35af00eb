"""The reward catalogue: rewards, their stock and fulfilment; segment membership for eligibility.

Revision ID: 0007
Revises: 0006
"""

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled by the change that adds these tables


def downgrade() -> None:
    pass
