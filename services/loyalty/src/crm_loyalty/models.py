"""Tables of the loyalty database, as SQLAlchemy Core metadata (the schema itself is in migrations/).

The hot paths use set-based SQL text in ``repository.py``, ``handlers.py`` and ``api.py`` (multi-row
``unnest`` inserts and updates, one transaction per batch); these definitions name the columns for readers and
for ad-hoc queries.
"""

from sqlalchemy import BigInteger, Column, Date, DateTime, Integer, MetaData, Numeric, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

accounts = Table(
    "accounts", metadata,
    Column("customer_id", Text, primary_key=True), Column("tier", Text), Column("tier_since", DateTime(True)),
    Column("below_tier_since", DateTime(True)), Column("available", BigInteger), Column("pending", BigInteger),
    Column("debt", BigInteger), Column("lifetime_earned", BigInteger), Column("birthday", Date),
    Column("birthday_bonus_year", Integer), Column("erased_at", DateTime(True)),
    Column("created_at", DateTime(True)), Column("updated_at", DateTime(True)))

lots = Table(
    "lots", metadata,
    Column("lot_id", BigInteger, primary_key=True), Column("customer_id", Text), Column("kind", Text),
    Column("order_id", Text), Column("points", BigInteger), Column("remaining", BigInteger), Column("state", Text),
    Column("business_at", DateTime(True)), Column("available_at", DateTime(True)),
    Column("expires_at", DateTime(True)), Column("expiry_noticed_at", DateTime(True)),
    Column("created_at", DateTime(True)))

ledger = Table(
    "ledger", metadata,
    Column("entry_id", BigInteger, primary_key=True), Column("customer_id", Text), Column("kind", Text),
    Column("points", BigInteger), Column("available_delta", BigInteger), Column("pending_delta", BigInteger),
    Column("debt_delta", BigInteger), Column("reason", Text), Column("order_id", Text),
    Column("redemption_id", Text), Column("lot_id", BigInteger), Column("actor", Text), Column("ticket_id", Text),
    Column("campaign", Text), Column("event_id", Text), Column("business_at", DateTime(True)),
    Column("recorded_at", DateTime(True)))

orders = Table(
    "orders", metadata,
    Column("order_id", Text, primary_key=True), Column("customer_id", Text), Column("status", Text),
    Column("currency", Text), Column("total_amount", Numeric(18, 4)), Column("points_value", Numeric(18, 4)),
    Column("refunded_amount", Numeric(18, 4)), Column("paid_at", DateTime(True)), Column("earned_points", BigInteger),
    Column("reversed_points", BigInteger), Column("lines", JSONB), Column("programme_version", Integer),
    Column("tier", Text), Column("created_at", DateTime(True)))

redemptions = Table(
    "redemptions", metadata,
    Column("redemption_id", Text, primary_key=True), Column("customer_id", Text), Column("kind", Text),
    Column("points", BigInteger), Column("points_returned", BigInteger), Column("currency", Text),
    Column("money_value", Numeric(18, 4)), Column("order_id", Text), Column("gift_sku", Text), Column("reason", Text),
    Column("actor", Text), Column("created_at", DateTime(True)))

redemption_lots = Table(
    "redemption_lots", metadata,
    Column("redemption_id", Text, primary_key=True), Column("lot_id", BigInteger, primary_key=True),
    Column("points", BigInteger), Column("returned", BigInteger))

programme_versions = Table(
    "programme_versions", metadata,
    Column("version", Integer, primary_key=True), Column("config", JSONB), Column("effective_from", DateTime(True)),
    Column("created_by", Text), Column("note", Text), Column("created_at", DateTime(True)))

win_backs = Table(
    "win_backs", metadata,
    Column("customer_id", Text, primary_key=True), Column("granted_at", DateTime(True), primary_key=True),
    Column("reward", JSONB))
