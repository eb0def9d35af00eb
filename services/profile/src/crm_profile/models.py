"""Tables of the profile database (created by the migrations; used here for typed reads)."""

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

customers = Table(
    "customers", metadata,
    Column("customer_id", Text, primary_key=True),
    # PII: AES-GCM ciphertexts (domain/pii.py) and keyed blind indexes for exact lookup.
    Column("email_enc", LargeBinary), Column("email_bidx", LargeBinary),
    Column("phone_enc", LargeBinary), Column("phone_bidx", LargeBinary),
    Column("name_enc", LargeBinary), Column("address_enc", LargeBinary),
    Column("birthday", Date), Column("gender", Text), Column("city", Text),
    Column("registered_at", DateTime(timezone=True)),
    Column("consent_email", Boolean), Column("consent_email_at", DateTime(timezone=True)),
    Column("consent_email_source", Text),
    Column("consent_sms", Boolean), Column("consent_sms_at", DateTime(timezone=True)),
    Column("consent_sms_source", Text),
    Column("tags", ARRAY(Text), nullable=False),
    Column("erased_at", DateTime(timezone=True)),
    Column("merged_into", Text),
    Column("rfm_r", Integer), Column("rfm_f", Integer), Column("rfm_m", Integer), Column("rfm_segment", Text),
    Column("rfm_scored_at", DateTime(timezone=True)), Column("tier", Text), Column("churn_level", Text),
    Column("order_count", Integer, nullable=False),
    Column("first_order_at", DateTime(timezone=True)),
    Column("last_order_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

customer_spend = Table(
    "customer_spend", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("currency", Text, primary_key=True),
    Column("amount", Numeric(18, 4), nullable=False),
)

orders = Table(
    "orders", metadata,
    Column("order_id", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("placed_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("refunded_amount", Numeric(18, 4), nullable=False),
    Column("channel", Text),
    Column("items", JSONB, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total_amount", Numeric(18, 4), nullable=False),
    Column("paid_at", DateTime(timezone=True)),  # null while only placed
)

customer_notes = Table(
    "customer_notes", metadata,
    Column("note_id", Uuid, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

customer_name_index = Table(
    "customer_name_index", metadata,
    Column("prefix_bidx", LargeBinary, primary_key=True),
    Column("customer_id", Text, primary_key=True),
)

consent_changes = Table(
    "consent_changes", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

pii_access_log = Table(
    "pii_access_log", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("accessed_at", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("fields", ARRAY(Text), nullable=False),
    Column("reason", Text, nullable=False),
    Column("request_id", Text),
)

timeline = Table(
    "timeline", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("kind", Text, nullable=False),
    Column("channel", Text),
    Column("details", JSONB, nullable=False),
    Column("event_id", Text, nullable=False),
)

segments = Table(
    "segments", metadata,
    Column("segment_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("rule", JSONB, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

segment_members = Table(
    "segment_members", metadata,
    Column("segment_id", Text, primary_key=True),
    Column("customer_id", Text, primary_key=True),
    Column("entered_at", DateTime(timezone=True), nullable=False),
)

# One row per run of crm-profile-rotate-pii-key (pii_rotation.py); key ids, never keys.
pii_key_rotations = Table(
    "pii_key_rotations", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("old_key_id", Text, nullable=False),
    Column("new_key_id", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("report", JSONB),
)
