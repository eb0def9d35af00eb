"""Tables of the tickets database (only the bus tables so far)."""

from sqlalchemy import MetaData

metadata = MetaData()
