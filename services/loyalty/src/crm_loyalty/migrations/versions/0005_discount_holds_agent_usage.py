"""Order discounts held until their order proves them; agents' adjustments per period; birthdays
kept as month and day only.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An order discount is taken before the order is paid, so nothing proves yet that the order is
    # the redeemer's: it is 'held' until commerce.order.paid of that customer confirms it ('applied',
    # within the programme's share cap) or it is 'voided' (points back). Gifts are 'applied' at once.
    op.execute("""
        ALTER TABLE redemptions
            ADD COLUMN status text NOT NULL DEFAULT 'applied' CHECK (status IN ('held', 'applied', 'voided')),
            ADD COLUMN resolved_at timestamptz,
            ADD COLUMN void_reason text""")
    op.execute("""
        UPDATE redemptions r SET status = 'held' WHERE kind = 'order_discount'
           AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = r.order_id)""")
    op.execute("CREATE INDEX redemptions_held ON redemptions (created_at) WHERE status = 'held'")
    # Points an agent moved (either way) per period: one row per agent and period, updated with a
    # guarded upsert so concurrent adjustments by one agent on different accounts cannot overshoot.
    op.execute("""
        CREATE TABLE agent_adjustment_usage (
            actor        text        NOT NULL,
            period_start timestamptz NOT NULL,
            points       bigint      NOT NULL CHECK (points >= 0),
            PRIMARY KEY (actor, period_start)
        )""")
    # The greeting goes once a year to every member; the bonus separately, so a member upgraded
    # later in the birthday month still gets the new tier's bonus.
    op.execute("ALTER TABLE accounts ADD COLUMN birthday_greeted_year integer")
    op.execute("UPDATE accounts SET birthday_greeted_year = birthday_bonus_year")
    # The birthday job needs the month (and the greeting the day), never the year: keep no more.
    op.execute("""
        UPDATE accounts SET birthday = make_date(2000, extract(month FROM birthday)::int,
                                                 extract(day FROM birthday)::int)
        WHERE birthday IS NOT NULL""")


def downgrade() -> None:
    op.execute("DROP TABLE agent_adjustment_usage")
    op.execute("ALTER TABLE accounts DROP COLUMN birthday_greeted_year")
    op.execute("DROP INDEX redemptions_held")
    op.execute("ALTER TABLE redemptions DROP COLUMN status, DROP COLUMN resolved_at, DROP COLUMN void_reason")
