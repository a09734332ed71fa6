"""The report path's cheaper bookkeeping.

- ``operations.revision``: every change to an operation (licenses, time
  zone, services, ...) bumps it. Admission compares it with the revision a
  worker's cached credential was read at and refuses a stale one, so a
  cache never serves changed settings or a revoked token.
- PostgreSQL only: calls admitted and slots released in batches, one round
  trip per event-loop turn, without waiting for a WAL flush; a released
  slot's row is reused; ``operations.ledger_version`` moves on with every
  change to the operation's rollups, so workers can cache figures.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ADMIT_0001_ARGS = "text, bigint, date, bigint, bigint, integer, timestamptz, timestamptz"
_ADMIT_ALL_ARGS = (
    "text[], bigint[], bigint[], date[], bigint[], bigint[], integer[], timestamptz[],"
    " timestamptz[]"
)

# The calls of one event-loop turn, admitted in one round trip: the SQL,
# with why it is shaped so, is in its own file beside this one.
ADMIT_ALL = Path(__file__).with_name("0002_admit_all.sql").read_text(encoding="utf-8")

# Slots given back in one turn, in one round trip. A slot's row is kept and
# marked free rather than deleted: the token's next call updates it in place.
RELEASE_ALL = """
CREATE FUNCTION voxmeter_release_all(p_tokens text[], p_slots integer[],
                                     p_leases timestamptz[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE token_slots AS t SET lease_until = '-infinity'
      FROM unnest(p_tokens, p_slots, p_leases) AS r(token_id, slot, lease_until)
     WHERE t.token_id = r.token_id AND t.slot = r.slot AND t.lease_until = r.lease_until;
END
$$
"""

_LEDGER_TRIGGERS = (
    ("rollups_inserted", "INSERT", "NEW"),
    ("rollups_updated", "UPDATE", "NEW"),
    ("rollups_deleted", "DELETE", "OLD"),
)

# Whatever changes an operation's rollups (events, corrections, a manual
# fix) moves its ledger version on, in the same transaction.
LEDGER_VERSION = [
    "ALTER TABLE operations ADD COLUMN ledger_version bigint NOT NULL DEFAULT 0",
    """
    CREATE FUNCTION voxmeter_ledger_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE operations SET ledger_version = ledger_version + 1
         WHERE id IN (SELECT DISTINCT operation_id FROM changed);
        RETURN NULL;
    END
    $$
    """,
    *(
        f"CREATE TRIGGER {name} AFTER {event} ON rollups"
        f" REFERENCING {table} TABLE AS changed FOR EACH STATEMENT"
        " EXECUTE FUNCTION voxmeter_ledger_changed()"
        for name, event, table in _LEDGER_TRIGGERS
    ),
]


def upgrade() -> None:
    op.execute("ALTER TABLE operations ADD COLUMN revision INTEGER NOT NULL DEFAULT 0")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION voxmeter_admit({_ADMIT_0001_ARGS})")
        for statement in (*LEDGER_VERSION, ADMIT_ALL, RELEASE_ALL):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in (
            "DROP FUNCTION voxmeter_release_all(text[], integer[], timestamptz[])",
            f"DROP FUNCTION voxmeter_admit_all({_ADMIT_ALL_ARGS})",
            *(f"DROP TRIGGER {name} ON rollups" for name, _, _ in _LEDGER_TRIGGERS),
            "DROP FUNCTION voxmeter_ledger_changed()",
            "ALTER TABLE operations DROP COLUMN ledger_version",
        ):
            op.execute(statement)
        op.execute(_initial().ADMIT_FUNCTION)
    op.execute("ALTER TABLE operations DROP COLUMN revision")


def _initial() -> ModuleType:
    """Revision 0001's module (its file name is not an importable module name)."""
    path = Path(__file__).with_name("0001_initial.py")
    spec = importlib.util.spec_from_file_location("voxmeter_migration_0001", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
