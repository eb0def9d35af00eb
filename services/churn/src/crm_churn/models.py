"""Tables of the churn database. The schema is in migrations/ (0002: history, models, scores); the
queries are SQL text in repository.py and handlers.py (set-based, PostgreSQL-specific)."""

from sqlalchemy import MetaData

metadata = MetaData()
