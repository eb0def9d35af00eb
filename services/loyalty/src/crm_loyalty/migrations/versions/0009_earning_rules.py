"""Earning rules beyond spend: sign-up, first order, reviews, referrals, tier-up.

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per bonus a rule granted, written in the transaction that credits it: the key makes
    # every grant once-only whatever is replayed (subject: '' for sign-up and first order, the sku
    # of a review, the referee of a referrer's bonus, the tier reached).
    op.execute("""
        CREATE TABLE rule_grants (
            customer_id       text        NOT NULL,
            rule              text        NOT NULL CHECK (rule IN ('signup', 'first_order', 'review',
                                                  'referral_referrer', 'referral_referee', 'tier_up')),
            subject           text        NOT NULL,
            granted_at        timestamptz NOT NULL,
            points            bigint      NOT NULL CHECK (points > 0),
            programme_version integer     NOT NULL,
            event_id          text,
            PRIMARY KEY (customer_id, rule, subject)
        )""")
    # Who named whom at registration, and what became of it (once per referee).
    op.execute("""
        CREATE TABLE referrals (
            referee_id    text        PRIMARY KEY,
            referrer_id   text        NOT NULL,
            registered_at timestamptz NOT NULL,
            status        text        NOT NULL CHECK (status IN ('pending', 'paid', 'refused')),
            reason        text,
            paid_at       timestamptz,
            order_id      text
        )""")
    op.execute("CREATE INDEX referrals_by_referrer ON referrals (referrer_id, registered_at)")
    # The fraud guard's blind index: keyed HMAC-SHA256 of the normalised e-mail, phone and payment
    # token; never the values. Deleted with the member's personal data on erasure.
    op.execute("""
        CREATE TABLE member_fingerprints (
            customer_id text  NOT NULL,
            kind        text  NOT NULL CHECK (kind IN ('email', 'phone', 'payment')),
            digest      bytea NOT NULL,
            PRIMARY KEY (customer_id, kind, digest)
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE member_fingerprints")
    op.execute("DROP TABLE referrals")
    op.execute("DROP TABLE rule_grants")
