"""Coupons: pools, codes and their uses by orders; what coupons took off each paid order.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A pool is the template every code issued from it follows: the discount, the cart it needs,
    # its window and its limits. used_count is kept on the row (not counted from coupon_uses) so
    # a global limit is checked under the pool's row lock, whatever order takes the last use.
    op.execute("""
        CREATE TABLE coupon_pools (
            pool_id            text        PRIMARY KEY CHECK (pool_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
            name               text        NOT NULL,
            discount_kind      text        NOT NULL CHECK (discount_kind IN ('percent', 'amount', 'free_shipping')),
            percent            numeric(7, 4) CHECK (percent > 0 AND percent <= 100),
            amount             numeric(18, 4) CHECK (amount > 0),
            currency           char(3),
            min_spend          numeric(18, 4) CHECK (min_spend >= 0),
            categories         text[]      NOT NULL DEFAULT '{}',
            prefix             text        CHECK (prefix ~ '^[0-9A-HJKMNP-TV-Z]{1,8}$'),
            valid_from         timestamptz,
            valid_until        timestamptz,
            validity_days      integer     CHECK (validity_days > 0),
            per_customer_limit integer     CHECK (per_customer_limit > 0),
            global_limit       integer     CHECK (global_limit > 0),
            issued_count       bigint      NOT NULL DEFAULT 0,
            used_count         bigint      NOT NULL DEFAULT 0 CHECK (used_count >= 0),
            active             boolean     NOT NULL DEFAULT true,
            version            integer     NOT NULL DEFAULT 1,
            created_by         text        NOT NULL,
            created_at         timestamptz NOT NULL DEFAULT now(),
            updated_at         timestamptz NOT NULL DEFAULT now(),
            CHECK (discount_kind <> 'percent' OR percent IS NOT NULL),
            CHECK (discount_kind <> 'amount' OR (amount IS NOT NULL AND currency IS NOT NULL)),
            CHECK (min_spend IS NULL OR currency IS NOT NULL),
            CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until > valid_from)
        )""")
    # A code is a secret (it is the coupon): unique, looked up normalized, never in a URL or an event.
    op.execute("""
        CREATE TABLE coupons (
            coupon_id     text        PRIMARY KEY,
            code          text        NOT NULL,
            pool_id       text        NOT NULL REFERENCES coupon_pools (pool_id),
            customer_id   text,
            issued_by     text        NOT NULL,
            issued_at     timestamptz NOT NULL,
            valid_from    timestamptz NOT NULL,
            valid_until   timestamptz,
            max_uses      integer     CHECK (max_uses > 0),
            uses          integer     NOT NULL DEFAULT 0 CHECK (uses >= 0),
            status        text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
            revoked_at    timestamptz,
            revoked_by    text,
            revoke_reason text
        )""")
    op.execute("CREATE UNIQUE INDEX coupons_code ON coupons (code)")
    op.execute("CREATE INDEX coupons_by_customer ON coupons (customer_id, issued_at DESC) "
               "WHERE customer_id IS NOT NULL")
    op.execute("CREATE INDEX coupons_by_pool ON coupons (pool_id)")
    # One row per coupon and order: applied (counted), released (its order was cancelled) or
    # refused (with the reason), so a conflict between two orders stays visible.
    op.execute("""
        CREATE TABLE coupon_uses (
            coupon_id   text          NOT NULL REFERENCES coupons (coupon_id),
            order_id    text          NOT NULL,
            customer_id text          NOT NULL,
            status      text          NOT NULL CHECK (status IN ('applied', 'released', 'refused')),
            reason      text,
            discount    numeric(18, 4) NOT NULL DEFAULT 0,
            currency    char(3)       NOT NULL,
            at          timestamptz   NOT NULL,
            released_at timestamptz,
            PRIMARY KEY (coupon_id, order_id)
        )""")
    op.execute("CREATE INDEX coupon_uses_by_order ON coupon_uses (order_id)")
    op.execute("CREATE INDEX coupon_uses_by_customer ON coupon_uses (customer_id) WHERE status = 'applied'")
    # What the order's coupons took off its value: total_amount keeps what the order was worth to
    # the customer after them (what earning, refund shares and the rolling spend are computed on).
    op.execute("ALTER TABLE orders ADD COLUMN coupon_discount numeric(18, 4) NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE orders DROP COLUMN coupon_discount")
    op.execute("DROP TABLE coupon_uses")
    op.execute("DROP TABLE coupons")
    op.execute("DROP TABLE coupon_pools")
