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
_ADMIT_ARGS = "text, bigint, bigint, date, bigint, bigint, integer, timestamptz, timestamptz"
_ADMIT_ALL_ARGS = (
    "text[], bigint[], bigint[], date[], bigint[], bigint[], integer[], timestamptz[],"
    " timestamptz[]"
)

# The admission function of 0001, plus the credential check: the token must
# still be active and its operation at the revision the caller's principal
# was read at, or nothing is counted and the verdict says so.
ADMIT = """
CREATE FUNCTION voxmeter_admit(
    p_token text, p_operation bigint, p_revision bigint, p_day date, p_token_limit bigint,
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
    -- Call counters and slots are not worth a WAL flush per call: a server
    -- crash may forget the last few calls counted, never corrupt anything.
    -- (The ledger's commits stay synchronous.)
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_advisory_xact_lock(72451, p_operation::integer);
    IF NOT EXISTS (SELECT 1 FROM tokens t JOIN operations o ON o.id = t.operation_id
                   WHERE t.id = p_token AND t.revoked_at IS NULL
                     AND o.id = p_operation AND o.revision = p_revision) THEN
        RETURN QUERY SELECT 'credential_changed', 0::bigint, 0::bigint, NULL::integer;
        RETURN;
    END IF;
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


# The calls a worker admits in one event-loop turn, in one round trip: each
# as voxmeter_admit would, in order. Every operation's lock is taken first,
# in one order, so that two workers' batches cannot deadlock. Each answer
# carries its operation's ledger version, which tells the worker whether
# the figures it has cached are still current.
ADMIT_ALL = """
CREATE FUNCTION voxmeter_admit_all(
    p_tokens text[], p_operations bigint[], p_revisions bigint[], p_days date[],
    p_token_limits bigint[], p_operation_limits bigint[], p_concurrency integer[],
    p_lease_until timestamptz[], p_now timestamptz[]
) RETURNS TABLE (verdict text, token_used bigint, operation_used bigint, slot integer,
                 ledger_version bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_operation bigint;
BEGIN
    FOR v_operation IN SELECT DISTINCT o FROM unnest(p_operations) AS o ORDER BY o LOOP
        PERFORM pg_advisory_xact_lock(72451, v_operation::integer);
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(p_tokens, 1), 0) LOOP
        RETURN QUERY
            SELECT a.verdict, a.token_used, a.operation_used, a.slot,
                   (SELECT o.ledger_version FROM operations o WHERE o.id = p_operations[i])
              FROM voxmeter_admit(p_tokens[i], p_operations[i], p_revisions[i], p_days[i],
                                  p_token_limits[i], p_operation_limits[i], p_concurrency[i],
                                  p_lease_until[i], p_now[i]) AS a;
    END LOOP;
END
$$
"""

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
        for statement in (*LEDGER_VERSION, ADMIT, ADMIT_ALL, RELEASE_ALL):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in (
            "DROP FUNCTION voxmeter_release_all(text[], integer[], timestamptz[])",
            f"DROP FUNCTION voxmeter_admit_all({_ADMIT_ALL_ARGS})",
            f"DROP FUNCTION voxmeter_admit({_ADMIT_ARGS})",
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
