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


# One round trip per admission; the advisory lock serialises the calls
# of one operation, which share its daily quota.
ADMIT_FUNCTION = """
CREATE FUNCTION voxmeter_admit(
    p_token text, p_operation bigint, p_day date, p_token_limit bigint,
    p_operation_limit bigint, p_concurrency integer, p_lease_until timestamptz,
    p_now timestamptz
) RETURNS TABLE (verdict text, token_used bigint, operation_used bigint, slot integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_token_used bigint;
    v_operation_used bigint;
    v_slot integer;
BEGIN
    PERFORM pg_advisory_xact_lock(72451, p_operation::integer);
    SELECT coalesce((SELECT c.used FROM token_calls c
                     WHERE c.token_id = p_token AND c.day = p_day), 0)
      INTO v_token_used;
    SELECT coalesce((SELECT c.used FROM operation_calls c
                     WHERE c.operation_id = p_operation AND c.day = p_day), 0)
      INTO v_operation_used;
    IF v_token_used >= p_token_limit OR v_operation_used >= p_operation_limit THEN
        RETURN QUERY SELECT 'quota_exceeded', v_token_used, v_operation_used, NULL::integer;
        RETURN;
    END IF;
    SELECT s INTO v_slot FROM generate_series(0, p_concurrency - 1) AS s
     WHERE NOT EXISTS (SELECT 1 FROM token_slots t WHERE t.token_id = p_token
                       AND t.slot = s AND t.lease_until > p_now)
     ORDER BY s LIMIT 1;
    IF v_slot IS NULL THEN
        RETURN QUERY SELECT 'too_many_in_flight', v_token_used, v_operation_used,
                            NULL::integer;
        RETURN;
    END IF;
    INSERT INTO token_slots AS t (token_id, slot, lease_until)
         VALUES (p_token, v_slot, p_lease_until)
    ON CONFLICT (token_id, slot) DO UPDATE SET lease_until = excluded.lease_until;
    INSERT INTO token_calls AS c (token_id, day, used, last_at)
         VALUES (p_token, p_day, 1, p_now)
    ON CONFLICT (token_id, day) DO UPDATE SET used = c.used + 1, last_at = excluded.last_at;
    INSERT INTO operation_calls AS c (operation_id, day, used)
         VALUES (p_operation, p_day, 1)
    ON CONFLICT (operation_id, day) DO UPDATE SET used = c.used + 1;
    RETURN QUERY SELECT 'admitted', v_token_used + 1, v_operation_used + 1, v_slot;
END
$$
"""

# PostgreSQL: native types; the ledger partitioned by month on the day an
# event counts on. A unique key on a partitioned table must include the
# partition key, so the permanent (operation, id) dedupe key lives in the
# unpartitioned event_keys table, written in the same transaction.
POSTGRES = [
    """
    CREATE TABLE operations (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL UNIQUE,
        server_id text NOT NULL,
        timezone text NOT NULL,
        licenses integer NOT NULL CHECK (licenses >= 0),
        pbx integer NOT NULL DEFAULT 0 CHECK (pbx >= 0),
        created_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE operation_services (
        operation_id bigint NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        service text NOT NULL,
        PRIMARY KEY (operation_id, service)
    )
    """,
    """
    CREATE TABLE tokens (
        id text PRIMARY KEY,
        operation_id bigint NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        secret_hash bytea NOT NULL UNIQUE,
        scope text NOT NULL CHECK (scope IN ('report', 'ingest')),
        description text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL,
        revoked_at timestamptz
    )
    """,
    "CREATE INDEX tokens_operation ON tokens (operation_id)",
    """
    CREATE TABLE token_calls (
        token_id text NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
        day date NOT NULL,
        used bigint NOT NULL,
        last_at timestamptz NOT NULL,
        PRIMARY KEY (token_id, day)
    )
    """,
    """
    CREATE TABLE operation_calls (
        operation_id bigint NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        day date NOT NULL,
        used bigint NOT NULL,
        PRIMARY KEY (operation_id, day)
    )
    """,
    # Simultaneous-call slots: a row is a call in flight until its lease
    # ends, so a worker that dies mid-call frees its slot by expiry.
    """
    CREATE TABLE token_slots (
        token_id text NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
        slot integer NOT NULL,
        lease_until timestamptz NOT NULL,
        PRIMARY KEY (token_id, slot)
    )
    """,
    ADMIT_FUNCTION,
    """
    CREATE TABLE event_keys (
        operation_id bigint NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        event_id text NOT NULL,
        fingerprint bytea NOT NULL,
        PRIMARY KEY (operation_id, event_id)
    )
    """,
    """
    CREATE TABLE events (
        seq bigint GENERATED ALWAYS AS IDENTITY,
        operation_id bigint NOT NULL,
        event_id text NOT NULL,
        meter text NOT NULL,
        quantity bigint NOT NULL,
        occurred_at timestamptz NOT NULL,
        day date NOT NULL,
        attributes text,
        fingerprint bytea NOT NULL,
        received_at timestamptz NOT NULL,
        PRIMARY KEY (day, seq),
        FOREIGN KEY (operation_id, event_id) REFERENCES event_keys (operation_id, event_id)
    ) PARTITION BY RANGE (day)
    """,
    # Catches any day whose month partition does not exist yet, so an insert
    # never fails; the store creates month partitions ahead of use.
    "CREATE TABLE events_default PARTITION OF events DEFAULT",
    "CREATE INDEX events_by_key ON events (operation_id, event_id)",
    "CREATE INDEX events_by_day ON events (operation_id, meter, day)",
    """
    CREATE TABLE corrections (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        operation_id bigint NOT NULL,
        event_id text NOT NULL,
        action text NOT NULL CHECK (action IN ('void', 'amend')),
        quantity bigint,
        reason text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL,
        FOREIGN KEY (operation_id, event_id) REFERENCES event_keys (operation_id, event_id)
    )
    """,
    "CREATE INDEX corrections_by_event ON corrections (operation_id, event_id, seq)",
    """
    CREATE VIEW effective_events AS
    SELECT e.seq, e.operation_id, e.event_id, e.meter, e.quantity, e.occurred_at, e.day,
           e.received_at, c.action AS last_action,
           CASE WHEN c.action = 'void' THEN NULL
                WHEN c.action = 'amend' THEN c.quantity
                ELSE e.quantity END AS effective_quantity
    FROM events e
    LEFT JOIN LATERAL (
        SELECT x.action, x.quantity FROM corrections x
        WHERE x.operation_id = e.operation_id AND x.event_id = e.event_id
        ORDER BY x.seq DESC LIMIT 1) c ON true
    """,
    """
    CREATE TABLE rejections (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        operation_id bigint NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        received_at timestamptz NOT NULL,
        event_index integer NOT NULL,
        event_id text,
        reason text NOT NULL
    )
    """,
    "CREATE INDEX rejections_recent ON rejections (operation_id, seq)",
    """
    CREATE TABLE rollups (
        operation_id bigint NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        meter text NOT NULL,
        day date NOT NULL,
        total bigint NOT NULL DEFAULT 0,
        gauge_value bigint,
        gauge_at timestamptz,
        PRIMARY KEY (operation_id, meter, day)
    )
    """,
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    statements = {"sqlite": SQLITE, "postgresql": POSTGRES}[dialect]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP VIEW effective_events")
    op.execute("DROP FUNCTION IF EXISTS voxmeter_admit")
    for table in (
        "rejections",
        "corrections",
        "rollups",
        "events",
        "event_keys",
        "token_slots",
        "operation_calls",
        "token_calls",
        "tokens",
        "operation_services",
        "operations",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
