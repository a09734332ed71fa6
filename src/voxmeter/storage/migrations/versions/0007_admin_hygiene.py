"""Disabling admin identities; what refused events carried.

- ``admin_identities.disabled_at``: when an owner disabled the identity;
  while set, its password, key and sessions open nothing. Kept rather than
  deleted so the audit log's names still say who they were.
- ``refused_payloads``: a truncated copy of refused events as sent (the
  first of each batch only), for the rejection debugger; matched to the
  rejection log by operation, arrival and position in the batch.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SQLITE = [
    "ALTER TABLE admin_identities ADD COLUMN disabled_at INTEGER",
    """
    CREATE TABLE refused_payloads (
        seq INTEGER PRIMARY KEY,
        operation_id INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        received_at INTEGER NOT NULL,
        event_index INTEGER NOT NULL,
        payload TEXT NOT NULL
    )
    """,
    "CREATE INDEX refused_payloads_recent ON refused_payloads (operation_id, received_at)",
]

POSTGRES = [
    "ALTER TABLE admin_identities ADD COLUMN disabled_at timestamptz",
    """
    CREATE TABLE refused_payloads (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        operation_id bigint NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        received_at timestamptz NOT NULL,
        event_index integer NOT NULL,
        payload text NOT NULL
    )
    """,
    "CREATE INDEX refused_payloads_recent ON refused_payloads (operation_id, received_at)",
]


def upgrade() -> None:
    for statement in {"sqlite": SQLITE, "postgresql": POSTGRES}[op.get_bind().dialect.name]:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE refused_payloads")
    op.execute("ALTER TABLE admin_identities DROP COLUMN disabled_at")
