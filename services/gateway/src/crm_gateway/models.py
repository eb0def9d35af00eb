"""Tables of the gateway database (created by the migrations; used here for typed queries)."""

from sqlalchemy import ARRAY, Column, DateTime, LargeBinary, MetaData, Table, Text

metadata = MetaData()

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", Text, primary_key=True),
    Column("client", Text, nullable=False),
    Column("secret_hash", LargeBinary, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_by", Text),
    Column("revoked_at", DateTime(timezone=True)),
)
