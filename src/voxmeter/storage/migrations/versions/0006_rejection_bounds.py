"""The rejection log bounded: a count of the rows dropped from it, per operation.

The log keeps only the latest refused events (per operation and in total,
see ``VOXMETER_MAX_REJECTIONS*``); ``rejections_dropped`` says how many of an
operation's were dropped to keep it so, so a listing can tell a short log
from a trimmed one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SQLITE = [
    """
    CREATE TABLE rejections_dropped (
        operation_id INTEGER PRIMARY KEY REFERENCES operations(id) ON DELETE CASCADE,
        dropped INTEGER NOT NULL
    )
    """,
]

POSTGRES = [
    """
    CREATE TABLE rejections_dropped (
        operation_id bigint PRIMARY KEY REFERENCES operations(id) ON DELETE CASCADE,
        dropped bigint NOT NULL
    )
    """,
]


def upgrade() -> None:
    statements = {"sqlite": SQLITE, "postgresql": POSTGRES}[op.get_bind().dialect.name]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE rejections_dropped")
