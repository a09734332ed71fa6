"""The PostgreSQL store through PgBouncer in transaction pooling mode.

PgBouncer gives each transaction whichever server connection is free, so
nothing tied to one server session may be relied on: no server-side prepared
statements, no startup ``options``. These tests start the distribution's
pgbouncer in front of the test server and run voxmeter through it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

import system_tools
from conftest import POSTGRES_ADMIN_URL, STORES, _admin, _postgres_url, free_port
from voxmeter.domain import tokens
from voxmeter.domain.models import NewOperation, TokenScope
from voxmeter.storage import open_store, split_pgbouncer_flag

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.pgbouncer,
    pytest.mark.skipif(
        "postgresql" not in STORES, reason="VOXMETER_TEST_STORES leaves PostgreSQL out"
    ),
]

ROOT = Path(__file__).resolve().parent.parent
# Tests of the store, the limits and the importer, run again through PgBouncer.
THROUGH_PGBOUNCER = [
    "tests/test_limits.py",
    "tests/test_credentials.py",
    "tests/test_usage_cli.py",
    "tests/test_ledger_properties.py",
    # The crash-and-rerun import is the slowest of these and adds nothing
    # the other imports do not already send through the pool.
    "-k",
    "not interrupted_by_a_server_crash",
]


def _config(port: int, workdir: Path) -> str:
    server = urlsplit(POSTGRES_ADMIN_URL)
    return f"""\
[databases]
; Any database name, passed through (the tests make their own databases).
; Server sessions start in a zone other than UTC: voxmeter must set its own.
* = host={server.hostname} port={server.port or 5432} timezone=America/Bogota

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir / "users.txt"}
pool_mode = transaction
; Hand out the server connections in turn (the default reuses the last
; one), so state left on one session is missed at once, not by chance.
server_round_robin = 1
default_pool_size = 4
max_client_conn = 500
"""


@pytest.fixture(scope="module")
def pgbouncer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A pgbouncer on a free loopback port; its URL, with voxmeter's pgbouncer flag."""
    binary = system_tools.ensure("pgbouncer", "pgbouncer")
    workdir = tmp_path_factory.mktemp("pgbouncer")
    user = urlsplit(POSTGRES_ADMIN_URL).username or "postgres"
    (workdir / "users.txt").write_text(f'"{user}" ""\n')
    port = free_port()
    (workdir / "pgbouncer.ini").write_text(_config(port, workdir))
    command = [binary, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]  # pgbouncer refuses to run as root
    log = workdir / "pgbouncer.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"postgresql://{user}@127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            psycopg.connect(f"{url}/postgres", connect_timeout=2).close()
            break
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"pgbouncer did not start:\n{log.read_text()}")
            time.sleep(0.1)
    yield f"{url}/postgres?pgbouncer=true"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def database_through(pgbouncer: str) -> Iterator[str]:
    """An empty database, made directly and reached through pgbouncer."""
    name = f"voxmeter_pgbouncer_{os.getpid()}"
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _admin(f"CREATE DATABASE {name}")
    yield _postgres_url(name, pgbouncer)
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_migrations_and_the_store_work_through_pgbouncer(database_through: str):
    upgrade = subprocess.run(
        [sys.executable, "-m", "voxmeter", "--database-url", database_through, "db", "upgrade"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    store = await open_store(database_through, pool_size=4)
    try:
        now = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
        operation = await store.create_operation(NewOperation(name="Acme BPO", licenses=3), now)
        # Read back in UTC though PgBouncer's server sessions start in Bogota.
        assert operation.created_at.utcoffset() == timedelta(0)
        token_id, secret = tokens.mint()
        await store.create_token(
            token_id, operation.id, tokens.secret_hash(secret), TokenScope.REPORT, "test", now
        )
        # The same statements, many times, from several connections at once:
        # each transaction lands on another server session.
        for _ in range(8):
            found = await asyncio.gather(*(store.get_token(token_id) for _ in range(8)))
            assert {token.id for token in found if token} == {token_id}
            assert [o.name for o in await store.list_operations()] == ["Acme BPO"]
    finally:
        await store.close()


def test_store_limits_and_import_tests_pass_through_pgbouncer(pgbouncer: str):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *THROUGH_PGBOUNCER],
        cwd=ROOT,
        env={
            **os.environ,
            "VOXMETER_TEST_STORES": "postgresql",
            "VOXMETER_TEST_POSTGRES_CLIENT_URL": pgbouncer,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    print(f"through pgbouncer: {summary} ({time.monotonic() - started:.0f} s)")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary, summary


def test_the_pgbouncer_flag_is_taken_out_of_the_url():
    assert split_pgbouncer_flag("postgresql://u@db:6432/vox?sslmode=disable&pgbouncer=true") == (
        "postgresql://u@db:6432/vox?sslmode=disable",
        True,
    )
    assert split_pgbouncer_flag("postgresql://u@db/vox?pgbouncer=false") == (
        "postgresql://u@db/vox",
        False,
    )
    assert split_pgbouncer_flag("postgresql://u@db/vox") == ("postgresql://u@db/vox", False)
