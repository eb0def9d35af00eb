"""Category views next to purchases: favourite categories come from both.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE customer_categories
            ALTER COLUMN quantity SET DEFAULT 0,
            ALTER COLUMN first_bought_at DROP NOT NULL,
            ALTER COLUMN last_bought_at DROP NOT NULL,
            ADD COLUMN views          integer NOT NULL DEFAULT 0,
            ADD COLUMN last_viewed_at timestamptz""")


def downgrade() -> None:
    op.execute("DELETE FROM customer_categories WHERE last_bought_at IS NULL")
    op.execute("""
        ALTER TABLE customer_categories DROP COLUMN views, DROP COLUMN last_viewed_at,
            ALTER COLUMN first_bought_at SET NOT NULL, ALTER COLUMN last_bought_at SET NOT NULL""")
