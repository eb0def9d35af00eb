"""RFM scores and named segment per customer; tier and churn level copied from their owners'
events; custom segments and their members.

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
        ALTER TABLE customers
            ADD COLUMN rfm_r         smallint CHECK (rfm_r BETWEEN 1 AND 5),
            ADD COLUMN rfm_f         smallint CHECK (rfm_f BETWEEN 1 AND 5),
            ADD COLUMN rfm_m         smallint CHECK (rfm_m BETWEEN 1 AND 5),
            ADD COLUMN rfm_segment   text,
            ADD COLUMN rfm_scored_at timestamptz,
            ADD COLUMN tier          text,
            ADD COLUMN churn_level   text""")
    op.execute("CREATE INDEX customers_rfm_segment ON customers (rfm_segment) WHERE rfm_segment IS NOT NULL")
    op.execute("""
        CREATE TABLE segments (
            segment_id  text        PRIMARY KEY,
            name        text        NOT NULL,
            description text,
            rule        jsonb       NOT NULL,
            created_by  text        NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE segment_members (
            segment_id  text        NOT NULL REFERENCES segments (segment_id) ON DELETE CASCADE,
            customer_id text        NOT NULL,
            entered_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (segment_id, customer_id)
        )""")
    op.execute("CREATE INDEX segment_members_by_customer ON segment_members (customer_id)")


def downgrade() -> None:
    op.execute("DROP TABLE segment_members")
    op.execute("DROP TABLE segments")
    op.execute("DROP INDEX customers_rfm_segment")
    op.execute("""
        ALTER TABLE customers DROP COLUMN rfm_r, DROP COLUMN rfm_f, DROP COLUMN rfm_m, DROP COLUMN rfm_segment,
            DROP COLUMN rfm_scored_at, DROP COLUMN tier, DROP COLUMN churn_level""")
