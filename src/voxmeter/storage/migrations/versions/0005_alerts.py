"""Hard caps, alert rules, the crossings recorded and the webhook outbox.

- ``meter_caps``: per operation and meter, the month-to-date quantity
  (scaled) a batch may not take the meter past.
- ``alert_rules``: levels (``"800"`` scaled units or ``"80%"`` of the cap,
  comma-separated) on a meter's month-to-date quantity, for one operation
  or, with no operation, for each; indexed by meter so a batch reads only
  the rules of its own meters.
- ``alert_crossings``: one row per (rule, operation, level, period) crossed;
  its primary key is what makes an alert once per level and period however
  many workers or batches cross it. A correction below the level deletes it.
- ``alert_events``: the outbox, written in the ledger transaction that
  crossed (or re-armed) the level.
- ``webhook_endpoints`` and ``alert_deliveries``: where events go, and each
  event's delivery to each endpoint (attempts, lease, outcome).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SQLITE = [
    """
    CREATE TABLE meter_caps (
        operation_id INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        meter TEXT NOT NULL,
        quantity INTEGER NOT NULL CHECK (quantity >= 0),
        PRIMARY KEY (operation_id, meter)
    )
    """,
    """
    CREATE TABLE alert_rules (
        id INTEGER PRIMARY KEY,
        operation_id INTEGER REFERENCES operations(id) ON DELETE CASCADE,
        meter TEXT NOT NULL,
        levels TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )
    """,
    "CREATE INDEX alert_rules_by_meter ON alert_rules (meter, operation_id)",
    """
    CREATE TABLE alert_crossings (
        rule_id INTEGER NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
        operation_id INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        level TEXT NOT NULL,
        period TEXT NOT NULL,
        crossed_at INTEGER NOT NULL,
        PRIMARY KEY (rule_id, operation_id, level, period)
    )
    """,
    """
    CREATE TABLE alert_events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('crossed', 'rearmed')),
        rule_id INTEGER NOT NULL,
        operation_id INTEGER NOT NULL,
        operation TEXT NOT NULL,
        meter TEXT NOT NULL,
        level TEXT NOT NULL,
        period TEXT NOT NULL,
        threshold INTEGER NOT NULL,
        quantity INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE webhook_endpoints (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        previous_secret TEXT,
        created_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE alert_deliveries (
        id INTEGER PRIMARY KEY,
        event_seq INTEGER NOT NULL REFERENCES alert_events(seq) ON DELETE CASCADE,
        endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        lease_until INTEGER,
        last_error TEXT,
        delivered_at INTEGER,
        UNIQUE (event_seq, endpoint_id)
    )
    """,
    "CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_attempt_at)",
]

POSTGRES = [
    """
    CREATE TABLE meter_caps (
        operation_id bigint NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        meter text NOT NULL,
        quantity bigint NOT NULL CHECK (quantity >= 0),
        PRIMARY KEY (operation_id, meter)
    )
    """,
    """
    CREATE TABLE alert_rules (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        operation_id bigint REFERENCES operations(id) ON DELETE CASCADE,
        meter text NOT NULL,
        levels text NOT NULL,
        created_at timestamptz NOT NULL
    )
    """,
    "CREATE INDEX alert_rules_by_meter ON alert_rules (meter, operation_id)",
    """
    CREATE TABLE alert_crossings (
        rule_id bigint NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
        operation_id bigint NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        level text NOT NULL,
        period text NOT NULL,
        crossed_at timestamptz NOT NULL,
        PRIMARY KEY (rule_id, operation_id, level, period)
    )
    """,
    """
    CREATE TABLE alert_events (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        kind text NOT NULL CHECK (kind IN ('crossed', 'rearmed')),
        rule_id bigint NOT NULL,
        operation_id bigint NOT NULL,
        operation text NOT NULL,
        meter text NOT NULL,
        level text NOT NULL,
        period text NOT NULL,
        threshold bigint NOT NULL,
        quantity bigint NOT NULL,
        created_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE webhook_endpoints (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        url text NOT NULL,
        secret text NOT NULL,
        previous_secret text,
        created_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE alert_deliveries (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_seq bigint NOT NULL REFERENCES alert_events(seq) ON DELETE CASCADE,
        endpoint_id bigint NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
        status text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL,
        lease_until timestamptz,
        last_error text,
        delivered_at timestamptz,
        UNIQUE (event_seq, endpoint_id)
    )
    """,
    "CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_attempt_at)",
]

TABLES = (
    "alert_deliveries",
    "webhook_endpoints",
    "alert_events",
    "alert_crossings",
    "alert_rules",
    "meter_caps",
)


def upgrade() -> None:
    statements = {"sqlite": SQLITE, "postgresql": POSTGRES}[op.get_bind().dialect.name]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE {table}")
