"""Statements: price books and their versions, subscriptions, closed statements.

A closed statement is kept as the exact JSON document it was closed with
(``document``), so it reads back byte for byte however the ledger changes
afterwards. ``number`` is gapless across the whole installation; the unique
(operation, month) key is what makes a second close of the same month,
even a concurrent one, insert nothing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Money and prices are decimal strings: exact in both dialects, and the
# domain does all arithmetic in Decimal.
SQLITE = [
    """
    CREATE TABLE price_books (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        currency TEXT NOT NULL,
        breakdown_attribute TEXT,
        created_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE price_book_versions (
        price_book_id INTEGER NOT NULL REFERENCES price_books(id) ON DELETE CASCADE,
        effective_month TEXT NOT NULL,
        sheet TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (price_book_id, effective_month)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE subscriptions (
        operation_id INTEGER PRIMARY KEY REFERENCES operations(id) ON DELETE CASCADE,
        price_book_id INTEGER NOT NULL REFERENCES price_books(id),
        created_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE statements (
        number INTEGER PRIMARY KEY,
        operation_id INTEGER NOT NULL REFERENCES operations(id),
        month TEXT NOT NULL,
        closed_at INTEGER NOT NULL,
        document TEXT NOT NULL,
        UNIQUE (operation_id, month)
    )
    """,
]

POSTGRES = [
    """
    CREATE TABLE price_books (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL UNIQUE,
        currency text NOT NULL,
        breakdown_attribute text,
        created_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE price_book_versions (
        price_book_id bigint NOT NULL REFERENCES price_books(id) ON DELETE CASCADE,
        effective_month text NOT NULL,
        sheet text NOT NULL,
        created_at timestamptz NOT NULL,
        PRIMARY KEY (price_book_id, effective_month)
    )
    """,
    """
    CREATE TABLE subscriptions (
        operation_id bigint PRIMARY KEY REFERENCES operations(id) ON DELETE CASCADE,
        price_book_id bigint NOT NULL REFERENCES price_books(id),
        created_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE statements (
        number bigint PRIMARY KEY,
        operation_id bigint NOT NULL REFERENCES operations(id),
        month text NOT NULL,
        closed_at timestamptz NOT NULL,
        document text NOT NULL,
        UNIQUE (operation_id, month)
    )
    """,
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": SQLITE, "postgresql": POSTGRES}[dialect]:
        op.execute(statement)


def downgrade() -> None:
    for table in ("statements", "subscriptions", "price_book_versions", "price_books"):
        op.execute(f"DROP TABLE {table}")
