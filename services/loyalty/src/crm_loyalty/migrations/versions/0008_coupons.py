"""Coupons: pools, codes and their uses by orders.

Revision ID: 0008
Revises: 0007
"""

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled by the change that adds these tables


def downgrade() -> None:
    pass
