"""Tables of the gateway database, as the migrations create them (the drift test holds the two
together): the bus tables and the API keys of server-side integrations."""

from crm_shared.tables import add_bus_tables
from sqlalchemy import ARRAY, Column, DateTime, LargeBinary, MetaData, Table, Text, func

metadata = MetaData()
add_bus_tables(metadata)

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", Text, primary_key=True),
    Column("client", Text, nullable=False),
    Column("secret_hash", LargeBinary, nullable=False),  # SHA-256 of the secret part; the key is never stored
    Column("scopes", ARRAY(Text), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_by", Text),
    Column("revoked_at", DateTime(timezone=True)),
)
