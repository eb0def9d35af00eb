"""Per-family event scopes replace ``events:write``.

``events:write`` admitted every ``commerce.*`` type, so a storefront tracker's key could fake paid
orders and rewrite contact data. Keys that held it keep what a tracker needs,
``interactions:write``; an integration that sends orders or customer updates needs a new key
with ``orders:write`` or ``customers:write`` (docs/gateway.md).

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _replace("events:write", "interactions:write")


def downgrade() -> None:
    _replace("interactions:write", "events:write")


def _replace(old: str, new: str) -> None:
    op.execute(f"""UPDATE api_keys
                   SET scopes = ARRAY(SELECT DISTINCT s FROM unnest(array_replace(scopes, '{old}', '{new}')) AS s
                                      ORDER BY s)
                   WHERE '{old}' = ANY(scopes)""")
