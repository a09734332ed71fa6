"""Fixtures: a real store, a real server on loopback, a clock the tests move."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import uvicorn

from voxmeter.config import Settings
from voxmeter.contract.meters import BILLING_METERS
from voxmeter.domain import tokens
from voxmeter.domain.models import NewOperation, Operation, TokenScope
from voxmeter.server.app import create_app
from voxmeter.storage import open_store, schema, split_pgbouncer_flag
from voxmeter.storage.base import Store
from voxmeter.storage.sqlite import sqlite_path


@dataclass
class FakeClock:
    """The server's notion of now, set by the test."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 24, 15, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# The PostgreSQL server the tests use (trust auth on this machine and in CI).
# Tests fail, never skip, when it is unreachable: VOXMETER_TEST_STORES=sqlite
# is the explicit opt-out for a machine without PostgreSQL.
POSTGRES_ADMIN_URL = os.environ.get(
    "VOXMETER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
STORES = os.environ.get("VOXMETER_TEST_STORES", "sqlite,postgresql").split(",")
# Where the stores under test connect: the admin URL's server unless
# tests/test_pgbouncer.py points this at PgBouncer. Databases are still made
# and dropped through the admin URL: a pooler's idle server connections would
# keep the template database busy.
POSTGRES_CLIENT_URL = os.environ.get("VOXMETER_TEST_POSTGRES_CLIENT_URL", POSTGRES_ADMIN_URL)


def _postgres_url(database: str, server: str = POSTGRES_ADMIN_URL) -> str:
    return urlunsplit(urlsplit(server)._replace(path=f"/{database}"))


def _admin(statement: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated database, copied for each test (much faster than migrating)."""
    name = f"voxmeter_template_{os.getpid()}"
    _admin(f"DROP DATABASE IF EXISTS {name}")
    _admin(f"CREATE DATABASE {name}")
    schema.upgrade(_postgres_url(name))
    yield name
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


_databases = itertools.count()


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database."""
    name = f"voxmeter_test_{os.getpid()}_{next(_databases)}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {postgres_template}")
    yield _postgres_url(name, POSTGRES_CLIENT_URL)
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh, migrated database of each store kind."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    url = f"sqlite:///{tmp_path / 'voxmeter.db'}"
    schema.upgrade(url)
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await open_store(database_url)
    yield opened
    await opened.close()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to run its server with other settings."""
    return {}


@dataclass
class RunningServer:
    base_url: str
    settings: Settings

    def client(self, secret: str | None = None) -> httpx.Client:
        headers = {} if secret is None else {"wolkvox-token": secret}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


@pytest.fixture
def server(
    store: Store, database_url: str, clock: FakeClock, settings_overrides: dict[str, Any]
) -> Iterator[RunningServer]:
    """voxmeter itself, served by uvicorn on a free loopback port."""
    settings = Settings(database_url=database_url, **settings_overrides)
    config = uvicorn.Config(create_app(settings, clock=clock), log_level="warning", lifespan="on")
    running = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    yield RunningServer(base_url=f"http://127.0.0.1:{port}", settings=settings)
    running.should_exit = True
    thread.join(timeout=10)
    sock.close()


@dataclass
class ServerProcess:
    """``voxmeter serve`` running as its own process tree (uvicorn workers)."""

    base_url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def serve_process(database_url: str) -> Iterator[Callable[..., ServerProcess]]:
    """Start ``voxmeter serve --workers N`` on the test database; stopped at teardown."""
    started: list[ServerProcess] = []

    def start(workers: int = 2, **settings: Any) -> ServerProcess:
        port = free_port()
        env = {**os.environ, "VOXMETER_DATABASE_URL": database_url}
        env.update({f"VOXMETER_{name.upper()}": str(value) for name, value in settings.items()})
        process = subprocess.Popen(
            [sys.executable, "-m", "voxmeter", "serve", "--port", str(port),
             "--workers", str(workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        handle = ServerProcess(base_url=f"http://127.0.0.1:{port}", process=process)
        started.append(handle)
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"voxmeter serve exited with {process.returncode}")
            try:
                httpx.get(handle.base_url + "/", timeout=1)
                return handle
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("voxmeter serve did not start") from None
                time.sleep(0.1)

    yield start
    for handle in started:
        handle.stop()


def execute_sql(database_url: str, sql: str) -> None:
    """Change the database behind voxmeter's back (to prove a check would notice)."""
    if database_url.startswith("postgresql://"):
        with psycopg.connect(split_pgbouncer_flag(database_url)[0], autocommit=True) as conn:
            conn.execute(sql)
        return
    with sqlite3.connect(sqlite_path(database_url)) as db:
        db.execute(sql)


async def add_operation(store: Store, clock: FakeClock, **fields: Any) -> Operation:
    new = NewOperation(**{"name": "Acme BPO", "licenses": 3, **fields})
    return await store.create_operation(new, clock())


async def add_token(
    store: Store, clock: FakeClock, operation: Operation, scope: TokenScope = TokenScope.REPORT
) -> str:
    """A new token's secret."""
    token_id, secret = tokens.mint()
    await store.create_token(
        token_id, operation.id, tokens.secret_hash(secret), scope, "test", clock()
    )
    return secret


async def snapshot(store: Store, day: datetime) -> dict[str, Any]:
    """Everything a refused call must leave as it was, read through the interface."""
    state: dict[str, Any] = {}
    for operation in await store.list_operations():
        figures = {}
        for meter in BILLING_METERS:
            first = datetime(2000, 1, 1).date()
            figures[meter.api] = (
                await store.summed_total(operation.id, meter.api, first, day.date()),
                await store.gauge_value(operation.id, meter.api, day.date()),
            )
        state[operation.name] = (operation, await store.list_tokens(operation.id), figures)
    return state
