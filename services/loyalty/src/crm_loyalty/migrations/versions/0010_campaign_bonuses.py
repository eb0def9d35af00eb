"""Bonus points granted by reference (campaigns): once per member and reference.

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Written in the transaction that credits the bonus, under the account's lock: the key makes a
    # reference ("campaign:<id>:<occurrence>") pay a member once, whatever idempotency key a retry
    # carries, and the row is the answer a repeated request gets (the balances as they were then).
    # The reason is in the ledger entry only (erasure scrubs it there).
    op.execute("""
        CREATE TABLE bonus_grants (
            customer_id     text        NOT NULL,
            reference       text        NOT NULL,
            entry_id        bigint      NOT NULL,
            points          bigint      NOT NULL CHECK (points > 0),
            available_after bigint      NOT NULL,
            debt_after      bigint      NOT NULL,
            granted_by      text        NOT NULL,
            granted_at      timestamptz NOT NULL,
            PRIMARY KEY (customer_id, reference)
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE bonus_grants")
