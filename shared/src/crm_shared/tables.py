"""The tables every service shares, as SQLAlchemy Core metadata for its ``models.py``.

Their DDL is written once in the shared migration helpers (``create_bus_tables``,
``create_merge_table``, ``create_idempotency_table``, ``create_erased_customers``); these
definitions say the same thing, so that a service's ``models.py`` describes its whole database and
the drift test (alembic's ``compare_metadata`` on a migrated database) can hold the two together.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, LargeBinary, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB


def add_bus_tables(metadata: MetaData) -> None:
    """``outbox`` (events waiting to be published) and ``inbox`` (events already applied)."""
    Table("outbox", metadata,
          Column("id", BigInteger, primary_key=True, autoincrement=True),
          Column("event_id", Text, nullable=False), Column("event_type", Text, nullable=False),
          Column("topic", Text, nullable=False), Column("key", LargeBinary, nullable=False),
          Column("value", LargeBinary, nullable=False), Column("headers", LargeBinary, nullable=False),
          Column("created_at", DateTime(True), nullable=False, server_default=text("now()")))
    Table("inbox", metadata,
          Column("source", Text, primary_key=True), Column("event_type", Text, primary_key=True),
          Column("event_id", Text, primary_key=True),
          Column("applied_at", DateTime(True), nullable=False, server_default=text("now()")),
          Index("inbox_applied_at", "applied_at"))


def add_erased_customers(metadata: MetaData) -> None:
    Table("erased_customers", metadata,
          Column("customer_id", Text, primary_key=True),
          Column("erased_at", DateTime(True), nullable=False))


def add_merge_table(metadata: MetaData) -> None:
    Table("customer_merges", metadata,
          Column("merge_id", BigInteger, primary_key=True, autoincrement=True),
          Column("survivor_id", Text, nullable=False), Column("duplicate_id", Text, nullable=False),
          Column("merged_at", DateTime(True), nullable=False), Column("event_id", Text, nullable=False),
          Column("moved", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
          Column("unmerged_at", DateTime(True)),
          Index("customer_merges_in_force", "duplicate_id", unique=True,
                postgresql_where=text("unmerged_at IS NULL")))


def add_idempotency_table(metadata: MetaData) -> None:
    Table("idempotency_keys", metadata,
          Column("owner", Text, primary_key=True), Column("key", Text, primary_key=True),
          Column("fingerprint", LargeBinary, nullable=False), Column("status", Integer, nullable=False),
          Column("body", LargeBinary, nullable=False),
          Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
          Index("idempotency_keys_created_at", "created_at"))
