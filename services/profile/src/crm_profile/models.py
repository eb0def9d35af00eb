"""Tables of the profile database: exactly what the migrations build (the drift test holds them together)."""

from crm_shared.tables import add_bus_tables, add_idempotency_table
from sqlalchemy import (
    ARRAY,
    CHAR,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
add_bus_tables(metadata)
add_idempotency_table(metadata)

NOW = func.now()

customers = Table(
    "customers", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("birthday", Date), Column("gender", Text), Column("city", Text),
    Column("registered_at", DateTime(timezone=True)),
    Column("consent_email", Boolean), Column("consent_sms", Boolean),
    Column("order_count", Integer, nullable=False, server_default="0"),
    Column("first_order_at", DateTime(timezone=True)),
    Column("last_order_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    # PII: AES-GCM ciphertexts (domain/pii.py) and keyed blind indexes for exact lookup.
    Column("email_enc", LargeBinary), Column("email_bidx", LargeBinary),
    Column("phone_enc", LargeBinary), Column("phone_bidx", LargeBinary),
    Column("name_enc", LargeBinary), Column("address_enc", LargeBinary),
    Column("consent_email_at", DateTime(timezone=True)), Column("consent_email_source", Text),
    Column("consent_sms_at", DateTime(timezone=True)), Column("consent_sms_source", Text),
    Column("tags", ARRAY(Text), nullable=False, server_default="{}"),
    Column("refunded_order_count", Integer, nullable=False, server_default="0"),
    Column("erased_at", DateTime(timezone=True)),
    Column("rfm_r", SmallInteger), Column("rfm_f", SmallInteger), Column("rfm_m", SmallInteger),
    Column("rfm_segment", Text), Column("rfm_scored_at", DateTime(timezone=True)),
    Column("tier", Text), Column("churn_level", Text),
    Column("merged_into", Text),
    Column("locale", Text), Column("time_zone", Text),
)
for column in ("email_bidx", "phone_bidx", "rfm_segment"):
    Index(f"customers_{column}", customers.c[column], postgresql_where=customers.c[column].is_not(None))

# Spend per currency: amounts in different currencies are never added up.
customer_spend = Table(
    "customer_spend", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("currency", CHAR(3), primary_key=True),
    Column("amount", Numeric(18, 4), nullable=False),
    Column("refunded", Numeric(18, 4), nullable=False, server_default="0"),
    Column("order_count", Integer, nullable=False, server_default="0"),
)

orders = Table(
    "orders", metadata,
    Column("order_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("total_amount", Numeric(18, 4), nullable=False),
    Column("paid_at", DateTime(timezone=True)),  # null while only placed
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("status", Text, nullable=False, server_default="paid"),
    Column("placed_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("refunded_amount", Numeric(18, 4), nullable=False, server_default="0"),
    Column("channel", Text),
    Column("items", JSONB, nullable=False, server_default="[]"),
    Index("orders_customer_id", "customer_id"),
)
Index("orders_by_customer_time", orders.c.customer_id, func.coalesce(orders.c.paid_at, orders.c.placed_at).desc())

customer_notes = Table(
    "customer_notes", metadata,
    Column("note_id", Uuid, primary_key=True),
    Column("customer_id", Text, ForeignKey("customers.customer_id"), nullable=False),
    Column("author", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)
Index("customer_notes_by_customer", customer_notes.c.customer_id, customer_notes.c.created_at.desc())

customer_name_index = Table(
    "customer_name_index", metadata,
    Column("prefix_bidx", LargeBinary, primary_key=True),
    Column("customer_id", Text, ForeignKey("customers.customer_id", ondelete="CASCADE"), primary_key=True),
    Index("customer_name_index_by_customer", "customer_id"),
)

consent_changes = Table(
    "consent_changes", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("customer_id", Text, ForeignKey("customers.customer_id", ondelete="CASCADE"), nullable=False),
    Column("channel", Text, nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Index("consent_changes_by_customer", "customer_id", "changed_at"),
)

pii_access_log = Table(
    "pii_access_log", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("accessed_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("actor", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("fields", ARRAY(Text), nullable=False),
    Column("reason", Text, nullable=False),
    Column("request_id", Text),
    Index("pii_access_log_by_customer", "customer_id", "accessed_at"),
    Index("pii_access_log_by_actor", "actor", "accessed_at"),
)

customer_categories = Table(
    "customer_categories", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("category", Text, primary_key=True),
    Column("quantity", Integer, nullable=False, server_default="0"),
    Column("first_bought_at", DateTime(timezone=True)),
    Column("last_bought_at", DateTime(timezone=True)),
    Column("views", Integer, nullable=False, server_default="0"),
    Column("last_viewed_at", DateTime(timezone=True)),
)

timeline = Table(
    "timeline", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("customer_id", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("kind", Text, nullable=False),
    Column("channel", Text),
    Column("details", JSONB, nullable=False, server_default="{}"),
    Column("event_id", Text, nullable=False),
)
Index("timeline_by_customer", timeline.c.customer_id, timeline.c.occurred_at.desc(), timeline.c.id.desc())

privacy_requests = Table(
    "privacy_requests", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("customer_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Index("privacy_requests_by_customer", "customer_id", "requested_at"),
)

segments = Table(
    "segments", metadata,
    Column("segment_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("rule", JSONB, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=NOW, nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=NOW, nullable=False),
)

segment_members = Table(
    "segment_members", metadata,
    Column("segment_id", Text, ForeignKey("segments.segment_id", ondelete="CASCADE"), primary_key=True),
    Column("customer_id", Text, primary_key=True),
    Column("entered_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Index("segment_members_by_customer", "customer_id"),
)

profile_merges = Table(
    "profile_merges", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("survivor_id", Text, nullable=False),
    Column("merged_id", Text, nullable=False),
    Column("identifier", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("merged_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("merged_stats", JSONB, nullable=False),  # the merged profile's statistics, for review
    # What the merge moved (row ids, field names): what an unmerge moves back.
    Column("moved", JSONB, nullable=False, server_default="{}"),
    Column("unmerged_at", DateTime(timezone=True)),
    Column("unmerged_by", Text),
    Column("unmerge_reason", Text),
    Index("profile_merges_by_survivor", "survivor_id", "merged_at"),
)
Index("profile_merges_in_force", profile_merges.c.merged_id, postgresql_where=profile_merges.c.unmerged_at.is_(None))

customer_external_ids = Table(
    "customer_external_ids", metadata,
    Column("customer_id", Text, ForeignKey("customers.customer_id", ondelete="CASCADE"), primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("value_enc", LargeBinary, nullable=False),
    Column("value_bidx", LargeBinary, nullable=False),
    Column("source", Text, nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Index("customer_external_ids_lookup", "kind", "value_bidx"),
)

# One row per run of crm-profile-rotate-pii-key; key ids, never keys.
pii_key_rotations = Table(
    "pii_key_rotations", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("old_key_id", Text, nullable=False),
    Column("new_key_id", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("finished_at", DateTime(timezone=True)),
    Column("report", JSONB),
)
