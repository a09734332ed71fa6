"""Operations, tokens, the usage ledger and its daily rollups.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Times are UTC microseconds since the epoch; days are ISO dates in the
# operation's own time zone, which is what every report groups by.
SQLITE = [
    """
    CREATE TABLE operations (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        server_id TEXT NOT NULL,
        timezone TEXT NOT NULL,
        licenses INTEGER NOT NULL CHECK (licenses >= 0),
        pbx INTEGER NOT NULL DEFAULT 0 CHECK (pbx >= 0),
        created_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE operation_services (
        operation_id INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        service TEXT NOT NULL,
        PRIMARY KEY (operation_id, service)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        operation_id INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        secret_hash BLOB NOT NULL UNIQUE,
        scope TEXT NOT NULL CHECK (scope IN ('report', 'ingest')),
        description TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    )
    """,
    "CREATE INDEX tokens_operation ON tokens (operation_id)",
    # Calls counted per local day, for the daily quota; last_at is the
    # token's last use, kept here so a call writes one row, not two.
    """
    CREATE TABLE token_calls (
        token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
        day TEXT NOT NULL,
        used INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        PRIMARY KEY (token_id, day)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE operation_calls (
        operation_id INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        day TEXT NOT NULL,
        used INTEGER NOT NULL,
        PRIMARY KEY (operation_id, day)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        operation_id INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        event_id TEXT NOT NULL,
        meter TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        occurred_at INTEGER NOT NULL,
        day TEXT NOT NULL,
        attributes TEXT,
        fingerprint BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        UNIQUE (operation_id, event_id)
    )
    """,
    "CREATE INDEX events_by_day ON events (operation_id, meter, day)",
    # Corrections are appended, never applied in place: an event's current
    # state is its latest correction, and the original row stays for audit.
    """
    CREATE TABLE corrections (
        seq INTEGER PRIMARY KEY,
        operation_id INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        event_id TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('void', 'amend')),
        quantity INTEGER,
        reason TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        FOREIGN KEY (operation_id, event_id) REFERENCES events (operation_id, event_id)
    )
    """,
    "CREATE INDEX corrections_by_event ON corrections (operation_id, event_id, seq)",
    # Each event as it counts now: NULL effective_quantity when voided.
    """
    CREATE VIEW effective_events AS
    SELECT e.seq, e.operation_id, e.event_id, e.meter, e.quantity, e.occurred_at, e.day,
           e.received_at, c.action AS last_action,
           CASE WHEN c.action = 'void' THEN NULL
                WHEN c.action = 'amend' THEN c.quantity
                ELSE e.quantity END AS effective_quantity
    FROM events e
    LEFT JOIN corrections c ON c.seq = (
        SELECT max(x.seq) FROM corrections x
        WHERE x.operation_id = e.operation_id AND x.event_id = e.event_id)
    """,
    # Why events did not count: one row per refused event of a refused batch.
    """
    CREATE TABLE rejections (
        seq INTEGER PRIMARY KEY,
        operation_id INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        received_at INTEGER NOT NULL,
        event_index INTEGER NOT NULL,
        event_id TEXT,
        reason TEXT NOT NULL
    )
    """,
    "CREATE INDEX rejections_recent ON rejections (operation_id, seq)",
    """
    CREATE TABLE rollups (
        operation_id INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        meter TEXT NOT NULL,
        day TEXT NOT NULL,
        total INTEGER NOT NULL DEFAULT 0,
        gauge_value INTEGER,
        gauge_at INTEGER,
        PRIMARY KEY (operation_id, meter, day)
    ) WITHOUT ROWID
    """,
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect != "sqlite":
        raise RuntimeError(f"no migration for the {dialect} dialect yet")
    for statement in SQLITE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP VIEW effective_events")
    for table in (
        "rejections",
        "corrections",
        "rollups",
        "events",
        "operation_calls",
        "token_calls",
        "tokens",
        "operation_services",
        "operations",
    ):
        op.execute(f"DROP TABLE {table}")
