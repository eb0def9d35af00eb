"""Accounts, lots, the append-only ledger, orders, redemptions, programme versions, win-backs.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
from crm_shared.idempotency import create_idempotency_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The cached balances always equal the ledger sums (checked by tests); the CHECKs are the last
    # line of defence for "never negative under any concurrency".
    op.execute("""
        CREATE TABLE accounts (
            customer_id          text PRIMARY KEY,
            tier                 text        NOT NULL,
            tier_since           timestamptz NOT NULL,
            below_tier_since     timestamptz,          -- start of the downgrade grace period
            available            bigint      NOT NULL DEFAULT 0 CHECK (available >= 0),
            pending              bigint      NOT NULL DEFAULT 0 CHECK (pending >= 0),
            debt                 bigint      NOT NULL DEFAULT 0 CHECK (debt >= 0),
            lifetime_earned      bigint      NOT NULL DEFAULT 0,
            birthday             date,
            birthday_bonus_year  integer,
            erased_at            timestamptz,
            created_at           timestamptz NOT NULL DEFAULT now(),
            updated_at           timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX accounts_birthday_month ON accounts (extract(month FROM birthday)) "
               "WHERE birthday IS NOT NULL")
    op.execute("""
        CREATE TABLE lots (
            lot_id            bigserial PRIMARY KEY,
            customer_id       text        NOT NULL,
            kind              text        NOT NULL,
            order_id          text,
            points            bigint      NOT NULL CHECK (points >= 0),
            remaining         bigint      NOT NULL CHECK (remaining >= 0),
            state             text        NOT NULL CHECK (state IN ('pending', 'available', 'closed')),
            business_at       timestamptz NOT NULL,
            available_at      timestamptz,
            expires_at        timestamptz,
            expiry_noticed_at timestamptz,
            created_at        timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX lots_open_by_customer ON lots (customer_id) WHERE state <> 'closed'")
    op.execute("CREATE INDEX lots_pending_due ON lots (available_at) WHERE state = 'pending'")
    op.execute("CREATE INDEX lots_available_expiry ON lots (expires_at) WHERE state = 'available'")
    op.execute("CREATE INDEX lots_by_order ON lots (order_id) WHERE order_id IS NOT NULL")
    # Append-only: rows are only ever inserted (the trigger refuses the rest).
    op.execute("""
        CREATE TABLE ledger (
            entry_id        bigserial PRIMARY KEY,
            customer_id     text        NOT NULL,
            kind            text        NOT NULL CHECK (kind IN ('earn', 'release', 'redeem', 'reverse',
                                                   'refund_of_spent', 'expire', 'adjust', 'bonus')),
            points          bigint      NOT NULL,
            available_delta bigint      NOT NULL,
            pending_delta   bigint      NOT NULL,
            debt_delta      bigint      NOT NULL,
            reason          text        NOT NULL,
            order_id        text,
            redemption_id   text,
            lot_id          bigint,
            actor           text,
            ticket_id       text,
            campaign        text,
            event_id        text,
            business_at     timestamptz NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT now(),
            CHECK (points = available_delta + pending_delta - debt_delta)
        )""")
    op.execute("CREATE INDEX ledger_by_customer ON ledger (customer_id, entry_id DESC)")
    op.execute("""
        CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the points ledger is append-only'; END $$""")
    op.execute("""CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
                  FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only()""")
    op.execute("""
        CREATE TABLE orders (
            order_id         text PRIMARY KEY,
            customer_id      text          NOT NULL,
            status           text          NOT NULL,  -- paid | completed | cancelled | refunded
            currency         char(3)       NOT NULL,
            total_amount     numeric(18,4) NOT NULL,
            points_value     numeric(18,4) NOT NULL DEFAULT 0,   -- paid with points
            refunded_amount  numeric(18,4) NOT NULL DEFAULT 0,
            paid_at          timestamptz,
            earned_points    bigint        NOT NULL DEFAULT 0,
            reversed_points  bigint        NOT NULL DEFAULT 0,
            lines            jsonb         NOT NULL DEFAULT '[]',  -- [{sku, quantity, points, refunded_qty}]
            programme_version integer,
            tier             text,
            created_at       timestamptz   NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX orders_by_customer_paid ON orders (customer_id, paid_at)")
    op.execute("""
        CREATE TABLE redemptions (
            redemption_id   text PRIMARY KEY,
            customer_id     text          NOT NULL,
            kind            text          NOT NULL,   -- gift | order_discount
            points          bigint        NOT NULL CHECK (points > 0),
            points_returned bigint        NOT NULL DEFAULT 0,
            currency        char(3),
            money_value     numeric(18,4),
            order_id        text,
            gift_sku        text,
            reason          text,
            actor           text          NOT NULL,
            created_at      timestamptz   NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX redemptions_by_order ON redemptions (order_id) WHERE order_id IS NOT NULL")
    op.execute("CREATE INDEX redemptions_by_customer ON redemptions (customer_id, created_at DESC)")
    # Which lots a redemption spent, so points given back return to the lots they came from.
    op.execute("""
        CREATE TABLE redemption_lots (
            redemption_id text   NOT NULL,
            lot_id        bigint NOT NULL,
            points        bigint NOT NULL,
            returned      bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (redemption_id, lot_id)
        )""")
    op.execute("""
        CREATE TABLE programme_versions (
            version        integer PRIMARY KEY,
            config         jsonb       NOT NULL,
            effective_from timestamptz NOT NULL,
            created_by     text        NOT NULL,
            note           text,
            created_at     timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE win_backs (
            customer_id text        NOT NULL,
            granted_at  timestamptz NOT NULL,
            reward      jsonb       NOT NULL,
            PRIMARY KEY (customer_id, granted_at)
        )""")
    create_idempotency_table()


def downgrade() -> None:
    for table in ("idempotency_keys", "win_backs", "programme_versions", "redemption_lots", "redemptions",
                  "orders", "ledger", "lots", "accounts"):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP FUNCTION ledger_is_append_only")
