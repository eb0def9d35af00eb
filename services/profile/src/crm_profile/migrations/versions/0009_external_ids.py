"""External identifiers of a customer (ERP id, WeChat openid, …), encrypted with a blind index.

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE customer_external_ids (
            customer_id text        NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
            kind        text        NOT NULL,
            value_enc   bytea       NOT NULL,
            value_bidx  bytea       NOT NULL,
            source      text        NOT NULL,
            added_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (customer_id, kind)
        )""")
    op.execute("CREATE INDEX customer_external_ids_lookup ON customer_external_ids (kind, value_bidx)")


def downgrade() -> None:
    op.execute("DROP TABLE customer_external_ids")
