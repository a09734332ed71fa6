"""The operator console's own records: admin identities, sessions, audit log, archive.

- ``admin_identities``: people (name and scrypt password hash) and API keys
  (key id and SHA-256 of the secret), each with a role.
- ``admin_sessions``: browser sessions, kept by the SHA-256 of the cookie's
  value, each with its CSRF token.
- ``admin_audit``: every admin mutation, append-only (triggers refuse any
  update or delete).
- ``archived_operations``: operations an admin archived (their tokens are
  revoked at the same time); the operations table itself is left as it is.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-26
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SQLITE = [
    """
    CREATE TABLE admin_identities (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
        kind TEXT NOT NULL CHECK (kind IN ('user', 'key')),
        key_id TEXT UNIQUE,
        secret_hash BLOB NOT NULL,
        created_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE admin_sessions (
        session_hash BLOB PRIMARY KEY,
        identity_id INTEGER NOT NULL REFERENCES admin_identities(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE admin_audit (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        before TEXT,
        after TEXT
    )
    """,
    """
    CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
    """,
    """
    CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
    """,
    """
    CREATE TABLE archived_operations (
        operation_id INTEGER PRIMARY KEY REFERENCES operations(id) ON DELETE CASCADE,
        archived_at INTEGER NOT NULL
    )
    """,
]

POSTGRES = [
    """
    CREATE TABLE admin_identities (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL UNIQUE,
        role text NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
        kind text NOT NULL CHECK (kind IN ('user', 'key')),
        key_id text UNIQUE,
        secret_hash bytea NOT NULL,
        created_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE admin_sessions (
        session_hash bytea PRIMARY KEY,
        identity_id bigint NOT NULL REFERENCES admin_identities(id) ON DELETE CASCADE,
        csrf text NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE admin_audit (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at timestamptz NOT NULL,
        actor text NOT NULL,
        action text NOT NULL,
        target text NOT NULL,
        before text,
        after text
    )
    """,
    """
    CREATE FUNCTION voxmeter_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only';
    END
    $$
    """,
    """
    CREATE TRIGGER admin_audit_append_only BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION voxmeter_audit_append_only()
    """,
    """
    CREATE TABLE archived_operations (
        operation_id bigint PRIMARY KEY REFERENCES operations(id) ON DELETE CASCADE,
        archived_at timestamptz NOT NULL
    )
    """,
]


def upgrade() -> None:
    statements = {"sqlite": SQLITE, "postgresql": POSTGRES}[op.get_bind().dialect.name]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    for table in ("archived_operations", "admin_audit", "admin_sessions", "admin_identities"):
        op.execute(f"DROP TABLE {table}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION voxmeter_audit_append_only()")
