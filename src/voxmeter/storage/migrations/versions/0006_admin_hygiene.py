"""Disabling admin identities.

- ``admin_identities.disabled_at``: when an owner disabled the identity;
  while set, its password, key and sessions open nothing. Kept rather than
  deleted so the audit log's names still say who they were.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMN_TYPE = {"sqlite": "INTEGER", "postgresql": "timestamptz"}


def upgrade() -> None:
    column_type = COLUMN_TYPE[op.get_bind().dialect.name]
    op.execute(f"ALTER TABLE admin_identities ADD COLUMN disabled_at {column_type}")


def downgrade() -> None:
    op.execute("ALTER TABLE admin_identities DROP COLUMN disabled_at")
