"""The inbox is keyed by (source, event type, event id): see crm_shared.migrations.key_inbox_by_event_type.

Revision ID: 0003
Revises: 0002
"""
from crm_shared.migrations import key_inbox_by_event_type, key_inbox_by_source_and_id

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    key_inbox_by_event_type()


def downgrade() -> None:
    key_inbox_by_source_and_id()
