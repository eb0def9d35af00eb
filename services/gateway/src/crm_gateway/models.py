"""Tables of the gateway database (only the bus tables so far)."""

from sqlalchemy import MetaData

metadata = MetaData()
