"""The inbox is keyed by (source, event type, event id): see crm_shared.migrations.key_inbox_by_event_type.

Revision ID: 0004
Revises: 0003
"""
from crm_shared.migrations import key_inbox_by_event_type, key_inbox_by_source_and_id

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    key_inbox_by_event_type()


def downgrade() -> None:
    key_inbox_by_source_and_id()
