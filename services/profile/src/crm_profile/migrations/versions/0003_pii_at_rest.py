"""PII encrypted at rest with blind indexes; consent history; PII access audit log.

E-mail, phone and name move from plaintext columns to AES-GCM ciphertexts (``*_enc``) with
keyed blind indexes (``*_bidx``) for exact lookup; names get a table of prefix indexes for
search. Plaintext columns are dropped: databases created before this revision held development
data only, whose contact fields are not carried over (encrypting needs the service's key).

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE customers DROP COLUMN email, DROP COLUMN phone, DROP COLUMN name")
    op.execute("""
        ALTER TABLE customers
            ADD COLUMN email_enc            bytea,
            ADD COLUMN email_bidx           bytea,
            ADD COLUMN phone_enc            bytea,
            ADD COLUMN phone_bidx           bytea,
            ADD COLUMN name_enc             bytea,
            ADD COLUMN address_enc          bytea,
            ADD COLUMN consent_email_at     timestamptz,
            ADD COLUMN consent_email_source text,
            ADD COLUMN consent_sms_at       timestamptz,
            ADD COLUMN consent_sms_source   text,
            ADD COLUMN tags                 text[] NOT NULL DEFAULT '{}'""")
    op.execute("CREATE INDEX customers_email_bidx ON customers (email_bidx) WHERE email_bidx IS NOT NULL")
    op.execute("CREATE INDEX customers_phone_bidx ON customers (phone_bidx) WHERE phone_bidx IS NOT NULL")
    op.execute("""
        CREATE TABLE customer_name_index (
            prefix_bidx bytea NOT NULL,
            customer_id text  NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
            PRIMARY KEY (prefix_bidx, customer_id)
        )""")
    op.execute("CREATE INDEX customer_name_index_by_customer ON customer_name_index (customer_id)")
    op.execute("""
        CREATE TABLE consent_changes (
            id          bigserial   PRIMARY KEY,
            customer_id text        NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
            channel     text        NOT NULL CHECK (channel IN ('email', 'sms')),
            granted     boolean     NOT NULL,
            changed_at  timestamptz NOT NULL,   -- when it changed in the shop (or the agent's edit)
            source      text        NOT NULL,   -- the event source, or agent:<id>
            recorded_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX consent_changes_by_customer ON consent_changes (customer_id, changed_at)")
    op.execute("""
        CREATE TABLE pii_access_log (
            id          bigserial   PRIMARY KEY,
            accessed_at timestamptz NOT NULL DEFAULT now(),
            actor       text        NOT NULL,
            role        text        NOT NULL,
            customer_id text        NOT NULL,
            fields      text[]      NOT NULL,
            reason      text        NOT NULL,
            request_id  text
        )""")
    op.execute("CREATE INDEX pii_access_log_by_customer ON pii_access_log (customer_id, accessed_at)")
    op.execute("CREATE INDEX pii_access_log_by_actor ON pii_access_log (actor, accessed_at)")


def downgrade() -> None:
    op.execute("DROP TABLE pii_access_log")
    op.execute("DROP TABLE consent_changes")
    op.execute("DROP TABLE customer_name_index")
    op.execute("""
        ALTER TABLE customers
            DROP COLUMN email_enc, DROP COLUMN email_bidx, DROP COLUMN phone_enc, DROP COLUMN phone_bidx,
            DROP COLUMN name_enc, DROP COLUMN address_enc, DROP COLUMN consent_email_at,
            DROP COLUMN consent_email_source, DROP COLUMN consent_sms_at, DROP COLUMN consent_sms_source,
            DROP COLUMN tags""")
    op.execute("ALTER TABLE customers ADD COLUMN email text, ADD COLUMN phone text, ADD COLUMN name text")
