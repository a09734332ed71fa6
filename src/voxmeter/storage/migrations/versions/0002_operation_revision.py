"""A revision number per operation, so workers can cache credentials safely;
cheaper admissions on PostgreSQL.

Every change to an operation (licenses, time zone, services, ...) bumps it;
admission compares it with the revision a worker's cached credential was
built from and refuses a stale one, so a cache never serves changed
settings or a revoked token. On PostgreSQL, admitting and releasing a call
no longer wait for a WAL flush, and a released slot's row is reused.

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


# A slot's row is kept and marked free rather than deleted: the next call
# of the token updates it in place instead of inserting a new row.
RELEASE = """
CREATE FUNCTION voxmeter_release(p_token text, p_slot integer, p_lease timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE token_slots SET lease_until = '-infinity'
     WHERE token_id = p_token AND slot = p_slot AND lease_until = p_lease;
END
$$
"""


def upgrade() -> None:
    op.execute("ALTER TABLE operations ADD COLUMN revision INTEGER NOT NULL DEFAULT 0")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION voxmeter_admit({_ADMIT_0001_ARGS})")
        op.execute(ADMIT)
        op.execute(RELEASE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION voxmeter_release(text, integer, timestamptz)")
        op.execute(f"DROP FUNCTION voxmeter_admit({_ADMIT_ARGS})")
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
