"""Tables of the profile database (created by the migrations; used here for typed reads)."""

from sqlalchemy import Boolean, Column, Date, DateTime, Integer, MetaData, Numeric, Table, Text, Uuid

metadata = MetaData()

customers = Table(
    "customers", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("email", Text), Column("phone", Text), Column("name", Text),
    Column("birthday", Date), Column("gender", Text), Column("city", Text),
    Column("registered_at", DateTime(timezone=True)),
    Column("consent_email", Boolean), Column("consent_sms", Boolean),
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
    Column("customer_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total_amount", Numeric(18, 4), nullable=False),
    Column("paid_at", DateTime(timezone=True), nullable=False),
)

customer_notes = Table(
    "customer_notes", metadata,
    Column("note_id", Uuid, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
