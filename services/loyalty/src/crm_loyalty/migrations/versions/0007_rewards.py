"""The reward catalogue: rewards, their stock and fulfilment; segment membership for eligibility.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FULFILMENT_STATUSES = "('requested', 'shipped', 'delivered', 'cancelled')"


def upgrade() -> None:
    # Stock is taken by one guarded UPDATE (stock >= quantity) under the row's lock, so concurrent
    # redemptions are serialised on the row and the CHECK is only the last line of defence.
    op.execute("""
        CREATE TABLE rewards (
            reward_id          text PRIMARY KEY,
            name               text          NOT NULL,
            description        text,
            kind               text          NOT NULL
                               CHECK (kind IN ('gift', 'cash_voucher', 'coupon', 'free_shipping')),
            points_price       bigint        NOT NULL CHECK (points_price > 0),
            cash_price         numeric(18,4) CHECK (cash_price > 0),
            cash_currency      char(3),
            sku                text,
            coupon_pool_id     text,
            stock              bigint        CHECK (stock >= 0),          -- NULL: unlimited
            redeemed_count     bigint        NOT NULL DEFAULT 0 CHECK (redeemed_count >= 0),
            available_from     timestamptz,
            available_until    timestamptz,
            eligible_tiers     text[]        NOT NULL DEFAULT '{}',       -- empty: every tier
            eligible_segments  text[]        NOT NULL DEFAULT '{}',       -- empty: everyone
            per_customer_limit integer       CHECK (per_customer_limit > 0),
            limit_period_days  integer       CHECK (limit_period_days > 0),  -- NULL: lifetime
            active             boolean       NOT NULL DEFAULT true,
            created_by         text          NOT NULL,
            created_at         timestamptz   NOT NULL DEFAULT now(),
            updated_at         timestamptz   NOT NULL DEFAULT now(),
            version            integer       NOT NULL DEFAULT 1,
            CHECK ((cash_price IS NULL) = (cash_currency IS NULL)),
            CHECK (kind = 'gift' OR coupon_pool_id IS NOT NULL),
            CHECK (available_from IS NULL OR available_until IS NULL OR available_from < available_until)
        )""")
    # A reward redemption is a redemption (kind 'reward'): its points and lots are kept and given
    # back exactly like a gift's. Its status stays 'applied' until a cancel voids it (points back);
    # where the reward is on its way is the fulfilment status.
    op.execute(f"""
        ALTER TABLE redemptions
            ADD COLUMN reward_id text,
            ADD COLUMN quantity integer CHECK (quantity BETWEEN 1 AND 10),
            ADD COLUMN cash_due numeric(18,4),
            ADD COLUMN cash_currency char(3),
            ADD COLUMN fulfilment_status text CHECK (fulfilment_status IN {FULFILMENT_STATUSES}),
            ADD COLUMN coupon_id text,
            ADD CONSTRAINT redemptions_reward_complete CHECK (
                kind <> 'reward' OR (reward_id IS NOT NULL AND quantity IS NOT NULL
                                     AND fulfilment_status IS NOT NULL))""")
    # The per-customer limit counts a member's redemptions of one reward since a moment.
    op.execute("CREATE INDEX redemptions_by_reward ON redemptions (customer_id, reward_id, created_at) "
               "WHERE reward_id IS NOT NULL")
    op.execute(f"""
        CREATE TABLE reward_fulfilment_history (
            entry_id      bigserial PRIMARY KEY,
            redemption_id text        NOT NULL,
            status        text        NOT NULL CHECK (status IN {FULFILMENT_STATUSES}),
            at            timestamptz NOT NULL,
            actor         text        NOT NULL,
            note          text,
            event_id      text
        )""")
    op.execute("CREATE INDEX reward_fulfilment_by_redemption ON reward_fulfilment_history (redemption_id, entry_id)")
    # Kept from crm.profile.segment.entered / exited: loyalty reads no other service's tables.
    op.execute("""
        CREATE TABLE member_segments (
            customer_id text        NOT NULL,
            segment_id  text        NOT NULL,
            since       timestamptz NOT NULL,
            PRIMARY KEY (customer_id, segment_id)
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE member_segments")
    op.execute("DROP TABLE reward_fulfilment_history")
    op.execute("DROP INDEX redemptions_by_reward")
    op.execute("""ALTER TABLE redemptions DROP CONSTRAINT redemptions_reward_complete, DROP COLUMN reward_id,
                  DROP COLUMN quantity, DROP COLUMN cash_due, DROP COLUMN cash_currency,
                  DROP COLUMN fulfilment_status, DROP COLUMN coupon_id""")
    op.execute("DROP TABLE rewards")
