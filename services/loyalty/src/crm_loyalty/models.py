"""Tables of the loyalty database, as SQLAlchemy Core metadata: exactly what the migrations build.

The drift test (``tests/service/shared/test_schema_drift.py``) holds the two together. The
statements themselves are set-based SQL text in ``repository/`` (multi-row ``unnest`` inserts and
updates, one transaction per batch); CHECK constraints and the ledger's append-only trigger live in
the migrations only (alembic does not compare them). ``sa.text`` spells server defaults and index
expressions (the skeleton test reads ``from sqlalchemy import text`` as SQL outside the repository).
"""

import sqlalchemy as sa
from crm_shared.tables import add_bus_tables, add_erased_customers, add_idempotency_table, add_merge_table
from sqlalchemy import CHAR, BigInteger, Boolean, Column, Date, DateTime, Index, Integer, MetaData, Numeric, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()
add_bus_tables(metadata)
add_idempotency_table(metadata)
add_erased_customers(metadata)
add_merge_table(metadata)

NOW = sa.text("now()")


accounts = Table(
    "accounts", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("tier", Text, nullable=False),
    Column("tier_since", DateTime(True), nullable=False),
    Column("below_tier_since", DateTime(True)),
    Column("available", BigInteger, nullable=False, server_default=sa.text("0")),
    Column("pending", BigInteger, nullable=False, server_default=sa.text("0")),
    Column("debt", BigInteger, nullable=False, server_default=sa.text("0")),
    Column("lifetime_earned", BigInteger, nullable=False, server_default=sa.text("0")),
    Column("birthday", Date),
    Column("birthday_bonus_year", Integer),
    Column("erased_at", DateTime(True)),
    Column("created_at", DateTime(True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(True), nullable=False, server_default=NOW),
    Column("birthday_greeted_year", Integer),
    Index("accounts_birthday_month", sa.text("extract(month FROM birthday)"),
          postgresql_where=sa.text("birthday IS NOT NULL")))

lots = Table(
    "lots", metadata,
    Column("lot_id", BigInteger, primary_key=True, autoincrement=True),
    Column("customer_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("order_id", Text),
    Column("points", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("business_at", DateTime(True), nullable=False),
    Column("available_at", DateTime(True)),
    Column("expires_at", DateTime(True)),
    Column("expiry_noticed_at", DateTime(True)),
    Column("created_at", DateTime(True), nullable=False, server_default=NOW),
    Index("lots_open_by_customer", "customer_id", postgresql_where=sa.text("state <> 'closed'")),
    Index("lots_pending_due", "available_at", postgresql_where=sa.text("state = 'pending'")),
    Index("lots_available_expiry", "expires_at", postgresql_where=sa.text("state = 'available'")),
    Index("lots_by_order", "order_id", postgresql_where=sa.text("order_id IS NOT NULL")))

ledger = Table(
    "ledger", metadata,
    Column("entry_id", BigInteger, primary_key=True, autoincrement=True),
    Column("customer_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("available_delta", BigInteger, nullable=False),
    Column("pending_delta", BigInteger, nullable=False),
    Column("debt_delta", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("order_id", Text),
    Column("redemption_id", Text),
    Column("lot_id", BigInteger),
    Column("actor", Text),
    Column("ticket_id", Text),
    Column("campaign", Text),
    Column("event_id", Text),
    Column("business_at", DateTime(True), nullable=False),
    Column("recorded_at", DateTime(True), nullable=False, server_default=NOW),
    Index("ledger_by_customer", "customer_id", sa.text("entry_id DESC")))

orders = Table(
    "orders", metadata,
    Column("order_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("total_amount", Numeric(18, 4), nullable=False),
    Column("points_value", Numeric(18, 4), nullable=False, server_default=sa.text("0")),
    Column("refunded_amount", Numeric(18, 4), nullable=False, server_default=sa.text("0")),
    Column("paid_at", DateTime(True)),
    Column("earned_points", BigInteger, nullable=False, server_default=sa.text("0")),
    Column("reversed_points", BigInteger, nullable=False, server_default=sa.text("0")),
    Column("lines", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    Column("programme_version", Integer),
    Column("tier", Text),
    Column("created_at", DateTime(True), nullable=False, server_default=NOW),
    Index("orders_by_customer_paid", "customer_id", "paid_at"))

redemptions = Table(
    "redemptions", metadata,
    Column("redemption_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("points_returned", BigInteger, nullable=False, server_default=sa.text("0")),
    Column("currency", CHAR(3)),
    Column("money_value", Numeric(18, 4)),
    Column("order_id", Text),
    Column("gift_sku", Text),
    Column("reason", Text),
    Column("actor", Text, nullable=False),
    Column("created_at", DateTime(True), nullable=False, server_default=NOW),
    Column("status", Text, nullable=False, server_default=sa.text("'applied'")),
    Column("resolved_at", DateTime(True)),
    Column("void_reason", Text),
    Index("redemptions_by_order", "order_id", postgresql_where=sa.text("order_id IS NOT NULL")),
    Index("redemptions_by_customer", "customer_id", sa.text("created_at DESC")),
    Index("redemptions_held", "created_at", postgresql_where=sa.text("status = 'held'")))

redemption_lots = Table(
    "redemption_lots", metadata,
    Column("redemption_id", Text, primary_key=True),
    Column("lot_id", BigInteger, primary_key=True, autoincrement=False),
    Column("points", BigInteger, nullable=False),
    Column("returned", BigInteger, nullable=False, server_default=sa.text("0")))

programme_versions = Table(
    "programme_versions", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("config", JSONB, nullable=False),
    Column("effective_from", DateTime(True), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("note", Text),
    Column("created_at", DateTime(True), nullable=False, server_default=NOW))

win_backs = Table(
    "win_backs", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("granted_at", DateTime(True), primary_key=True),
    Column("reward", JSONB, nullable=False))

agent_adjustment_usage = Table(
    "agent_adjustment_usage", metadata,
    Column("actor", Text, primary_key=True),
    Column("period_start", DateTime(True), primary_key=True),
    Column("points", BigInteger, nullable=False))

# -- the reward catalogue (migration 0007) ---------------------------------------------------------
# Rewards, their stock, the redemptions of a reward and their fulfilment, and the members'
# segments (for eligibility). The reward columns of ``redemptions`` are appended here (migration
# 0007 adds them), so this section stays apart from the table's own definition.

rewards = Table(
    "rewards", metadata,
    Column("reward_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("kind", Text, nullable=False),
    Column("points_price", BigInteger, nullable=False),
    Column("cash_price", Numeric(18, 4)),
    Column("cash_currency", CHAR(3)),
    Column("sku", Text),
    Column("coupon_pool_id", Text),
    Column("stock", BigInteger),
    Column("redeemed_count", BigInteger, nullable=False, server_default=sa.text("0")),
    Column("available_from", DateTime(True)),
    Column("available_until", DateTime(True)),
    Column("eligible_tiers", ARRAY(Text), nullable=False, server_default="{}"),
    Column("eligible_segments", ARRAY(Text), nullable=False, server_default="{}"),
    Column("per_customer_limit", Integer),
    Column("limit_period_days", Integer),
    Column("active", Boolean, nullable=False, server_default=sa.text("true")),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(True), nullable=False, server_default=NOW),
    Column("version", Integer, nullable=False, server_default=sa.text("1")))

for _column in (Column("reward_id", Text), Column("quantity", Integer), Column("cash_due", Numeric(18, 4)),
                Column("cash_currency", CHAR(3)), Column("fulfilment_status", Text), Column("coupon_id", Text)):
    redemptions.append_column(_column)
Index("redemptions_by_reward", redemptions.c.customer_id, redemptions.c.reward_id, redemptions.c.created_at,
      postgresql_where=sa.text("reward_id IS NOT NULL"))

reward_fulfilment_history = Table(
    "reward_fulfilment_history", metadata,
    Column("entry_id", BigInteger, primary_key=True, autoincrement=True),
    Column("redemption_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("at", DateTime(True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("note", Text),
    Column("event_id", Text),
    Index("reward_fulfilment_by_redemption", "redemption_id", "entry_id"))

member_segments = Table(
    "member_segments", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("segment_id", Text, primary_key=True),
    Column("since", DateTime(True), nullable=False))

# -- coupons (migration 0008) ----------------------------------------------------------------------
# Pools (the template of a discount), the codes issued from them, and their uses by orders.
# (The comment lines keep each section's additions apart from the others'.)

coupon_pools = Table(
    "coupon_pools", metadata,
    Column("pool_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("discount_kind", Text, nullable=False),
    Column("percent", Numeric(7, 4)),
    Column("amount", Numeric(18, 4)),
    Column("currency", CHAR(3)),
    Column("min_spend", Numeric(18, 4)),
    Column("categories", sa.ARRAY(Text), nullable=False, server_default=sa.text("'{}'")),
    Column("prefix", Text),
    Column("valid_from", DateTime(True)),
    Column("valid_until", DateTime(True)),
    Column("validity_days", Integer),
    Column("per_customer_limit", Integer),
    Column("global_limit", Integer),
    Column("issued_count", BigInteger, nullable=False, server_default=sa.text("0")),
    Column("used_count", BigInteger, nullable=False, server_default=sa.text("0")),
    Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
    Column("version", Integer, nullable=False, server_default=sa.text("1")),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(True), nullable=False, server_default=NOW))

coupons = Table(
    "coupons", metadata,
    Column("coupon_id", Text, primary_key=True),
    Column("code", Text, nullable=False),
    Column("pool_id", Text, sa.ForeignKey("coupon_pools.pool_id"), nullable=False),
    Column("customer_id", Text),
    Column("issued_by", Text, nullable=False),
    Column("issued_at", DateTime(True), nullable=False),
    Column("valid_from", DateTime(True), nullable=False),
    Column("valid_until", DateTime(True)),
    Column("max_uses", Integer),
    Column("uses", Integer, nullable=False, server_default=sa.text("0")),
    Column("status", Text, nullable=False, server_default=sa.text("'active'")),
    Column("revoked_at", DateTime(True)),
    Column("revoked_by", Text),
    Column("revoke_reason", Text),
    Index("coupons_code", "code", unique=True),
    Index("coupons_by_customer", "customer_id", sa.text("issued_at DESC"),
          postgresql_where=sa.text("customer_id IS NOT NULL")),
    Index("coupons_by_pool", "pool_id"))

coupon_uses = Table(
    "coupon_uses", metadata,
    Column("coupon_id", Text, sa.ForeignKey("coupons.coupon_id"), primary_key=True),
    Column("order_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("discount", Numeric(18, 4), nullable=False, server_default=sa.text("0")),
    Column("currency", CHAR(3), nullable=False),
    Column("at", DateTime(True), nullable=False),
    Column("released_at", DateTime(True)),
    Index("coupon_uses_by_order", "order_id"),
    Index("coupon_uses_by_customer", "customer_id", postgresql_where=sa.text("status = 'applied'")))

orders.append_column(Column("coupon_discount", Numeric(18, 4), nullable=False, server_default=sa.text("0")))

# -- earning rules (migration 0009) ----------------------------------------------------------------
# What the rules beyond spend have granted (once per member, per order, per review…) and the
# referrals between members.
# The referral fraud guard's blind index (keyed digests of e-mail, phone, payment token).

rule_grants = Table(
    "rule_grants", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("rule", Text, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("granted_at", DateTime(True), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("programme_version", Integer, nullable=False),
    Column("event_id", Text))

referrals = Table(
    "referrals", metadata,
    Column("referee_id", Text, primary_key=True),
    Column("referrer_id", Text, nullable=False),
    Column("registered_at", DateTime(True), nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("paid_at", DateTime(True)),
    Column("order_id", Text),
    Index("referrals_by_referrer", "referrer_id", "registered_at"))

member_fingerprints = Table(
    "member_fingerprints", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("digest", sa.LargeBinary, primary_key=True))

# -- bonuses by reference (migration 0010) ---------------------------------------------------------
# A campaign's bonus points, once per member and reference, and the answer to a repeated request.

bonus_grants = Table(
    "bonus_grants", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("reference", Text, primary_key=True),
    Column("entry_id", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("available_after", BigInteger, nullable=False),
    Column("debt_after", BigInteger, nullable=False),
    Column("granted_by", Text, nullable=False),
    Column("granted_at", DateTime(True), nullable=False))

# -- adjustment requests (migration 0011) -----------------------------------------------------------
# An adjustment above an agent's limit waits here for a supervisor's decision.

adjustment_requests = Table(
    "adjustment_requests", metadata,
    Column("seq", BigInteger, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("ticket_id", Text),
    Column("requested_by", Text, nullable=False),
    Column("requested_at", DateTime(True), nullable=False),
    Column("status", Text, nullable=False),
    Column("decided_by", Text),
    Column("decided_at", DateTime(True)),
    Column("note", Text),
    Column("entry_id", BigInteger),
    Index("adjustment_requests_pending", "seq", postgresql_where=sa.text("status = 'pending'")),
    Index("adjustment_requests_customer", "customer_id"))
