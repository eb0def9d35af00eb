"""Earning rules beyond spend: sign-up, first order, reviews, referrals, tier-up.

Revision ID: 0009
Revises: 0008
"""

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled by the change that adds these tables


def downgrade() -> None:
    pass
