"""A customer's locale and time zone (from the shop's customer events), for campaigns.

Revision ID: 0013
Revises: 0012
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain text like city: not contact data, so not sealed; validated by the event contract
    # (a BCP 47 tag, an IANA zone name) and erased with the rest of the profile.
    op.execute("ALTER TABLE customers ADD COLUMN locale text, ADD COLUMN time_zone text")


def downgrade() -> None:
    op.execute("ALTER TABLE customers DROP COLUMN locale, DROP COLUMN time_zone")
