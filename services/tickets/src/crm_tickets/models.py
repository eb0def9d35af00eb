"""Tables of the tickets database. The schema is in migrations/; the queries are SQL text in
repository.py, api.py and reports.py (set-based, PostgreSQL-specific: full-text search, SKIP LOCKED)."""

from sqlalchemy import MetaData

metadata = MetaData()
