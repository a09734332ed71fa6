"""Schema migrations, the start-up check and PostgreSQL's month partitions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime

import psycopg
import pytest

from conftest import POSTGRES_ADMIN_URL, FakeClock, _admin, _postgres_url, add_operation
from ledger_helpers import record
from voxmeter.storage import open_store
from voxmeter.storage.postgres import PostgresStore


@pytest.fixture
def empty_postgres():
    name = "voxmeter_empty_schema_test"
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _admin(f"CREATE DATABASE {name}")
    yield _postgres_url(name)
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def voxmeter(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxmeter", "--database-url", url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_server_refuses_a_schema_that_is_behind_until_it_is_upgraded(empty_postgres: str):
    refused = voxmeter(empty_postgres, "serve", "--port", "1")
    assert refused.returncode == 1
    assert "run `voxmeter db upgrade`" in refused.stderr
    upgraded = voxmeter(empty_postgres, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert voxmeter(empty_postgres, "operation", "list").returncode == 0


def test_sqlite_is_migrated_on_first_use(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    created = voxmeter(url, "operation", "create", "Acme", "--licenses", "1")
    assert created.returncode == 0, created.stderr


async def test_the_ledger_is_partitioned_by_month(postgres_url: str):
    database_url = postgres_url
    store = await open_store(database_url)
    assert isinstance(store, PostgresStore)
    clock = FakeClock()
    try:
        operation = await add_operation(store, clock, timezone="UTC")
        # A row written while its month had no partition lands in DEFAULT...
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO event_keys VALUES (%s, 'early', '\\x00')", (operation.id,))
            conn.execute(
                "INSERT INTO events (operation_id, event_id, meter, quantity, occurred_at, day,"
                " fingerprint, received_at) VALUES (%s, 'early', 'ivr_calls', 1, %s, %s,"
                " '\\x00', now())",
                (operation.id, datetime(2027, 3, 2, tzinfo=UTC), datetime(2027, 3, 2).date()),
            )
        # ...and moves into the month's partition when the store first needs it.
        await record(store, operation, clock(), ("ivr_calls", 2, "2027-03-05T10:00:00Z", "late"))
        with psycopg.connect(database_url, autocommit=True) as conn:
            homes = conn.execute(
                "SELECT event_id, tableoid::regclass::text FROM events ORDER BY event_id"
            ).fetchall()
        assert homes == [("early", "events_2027_03"), ("late", "events_2027_03")]
    finally:
        await store.close()


def test_the_admin_url_is_reachable():
    """PostgreSQL must be up for the suite: this fails loudly instead of skipping."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


async def test_workers_starting_together_create_each_month_once(postgres_url: str):
    stores = await asyncio.gather(*(open_store(postgres_url) for _ in range(6)))
    for store in stores:
        await store.close()
    with psycopg.connect(postgres_url) as conn:
        months = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"
        ).fetchone()
    assert months == (4,)  # previous, current and next month, and the default


async def test_the_schema_goes_back_a_revision_and_forward_again_keeping_the_data(
    database_url: str,
):
    clock = FakeClock()
    store = await open_store(database_url)
    try:
        operation = await add_operation(store, clock)
    finally:
        await store.close()
    down = voxmeter(database_url, "db", "downgrade", "0001")
    assert down.returncode == 0, down.stderr
    assert "schema at revision 0001" in down.stderr + down.stdout
    up = voxmeter(database_url, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    store = await open_store(database_url)
    try:
        assert await store.get_operation(operation.name) == operation
    finally:
        await store.close()
