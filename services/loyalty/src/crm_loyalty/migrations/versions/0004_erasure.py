"""Erasure: the erased customers (a tombstone), and the ledger's free text may be scrubbed.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
from crm_shared.migrations import create_erased_customers, drop_erased_customers

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every id the profile erased, also those without an account yet: an account opened later by a
    # late order starts erased (the trigger), so no birthday, greeting or offer ever reaches it.
    create_erased_customers()
    op.execute("""
        CREATE FUNCTION accounts_of_erased_start_erased() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            SELECT erased_at INTO NEW.erased_at FROM erased_customers WHERE customer_id = NEW.customer_id;
            RETURN NEW;
        END $$""")
    op.execute("""CREATE TRIGGER accounts_of_erased_start_erased BEFORE INSERT ON accounts
                  FOR EACH ROW EXECUTE FUNCTION accounts_of_erased_start_erased()""")
    # The ledger stays append-only for everything but its free text: an erasure may replace the
    # reason an agent wrote; points, deltas, causes and times can never change.
    op.execute("""
        CREATE OR REPLACE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE' AND to_jsonb(NEW) - 'reason' = to_jsonb(OLD) - 'reason' THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'the points ledger is append-only';
        END $$""")


def downgrade() -> None:
    op.execute("""
        CREATE OR REPLACE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the points ledger is append-only'; END $$""")
    op.execute("DROP TRIGGER accounts_of_erased_start_erased ON accounts")
    op.execute("DROP FUNCTION accounts_of_erased_start_erased")
    drop_erased_customers()
