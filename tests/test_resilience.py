"""Failing parts: a database that goes away, a disk that fills up.

Each fault is made here, on loopback and bounded in time: a PostgreSQL
outage through a TCP proxy this module runs between the server and the
database, a full disk through a small file system mounted for the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import uvicorn

from conftest import FakeClock, RunningServer, add_operation, add_token
from voxmeter.config import Settings
from voxmeter.contract import errors
from voxmeter.domain.models import Rejection, TokenScope
from voxmeter.server.app import create_app
from voxmeter.services import Services
from voxmeter.storage import open_store, schema
from voxmeter.storage.base import Store
from voxmeter.storage.ports import StoreFull

REPORT = "/api/v2/billing.php?api=ivr_calls"
READY_BOUND_SECONDS = 1.0
BACK_WITHIN_SECONDS = 2.0


class OutageProxy:
    """A TCP proxy to the database that can be paused: the outage under test.

    Paused, it drops every connection it carries and closes each new one at
    once, as a database that went down (or restarts) does; resumed, it
    forwards again. It runs its own event loop in a thread.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.paused = False
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def __enter__(self) -> OutageProxy:
        self._thread.start()
        assert self._listening.wait(5), "the proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._listening.set()
        self._loop.run_forever()
        server.close()
        for writer in self._writers:
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.paused:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))
            writer.transport.abort()
            up_writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        writer.transport.abort()

    def pause(self) -> None:
        def drop_all() -> None:
            self.paused = True
            for writer in list(self._writers):
                writer.transport.abort()

        self._loop.call_soon_threadsafe(drop_all)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self, "paused", False)


def through(proxy: OutageProxy, url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))


def serve(settings: Settings, clock: FakeClock) -> Iterator[RunningServer]:
    config = uvicorn.Config(create_app(settings, clock=clock), log_level="error", lifespan="on")
    running = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    yield RunningServer(base_url=f"http://127.0.0.1:{port}", settings=settings)
    running.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def proxy(database_url: str) -> Iterator[OutageProxy]:
    if not database_url.startswith("postgresql"):
        pytest.skip("an outage of a networked database: PostgreSQL only")
    parts = urlsplit(database_url)
    with OutageProxy((parts.hostname or "127.0.0.1", parts.port or 5432)) as running:
        yield running


@pytest.fixture
def proxied(
    store: Store, database_url: str, proxy: OutageProxy, clock: FakeClock
) -> Iterator[RunningServer]:
    """voxmeter on PostgreSQL through the proxy."""
    settings = Settings(database_url=through(proxy, database_url), access_logs=False)
    yield from serve(settings, clock)


@pytest.fixture
async def secrets(store: Store, clock: FakeClock) -> dict[str, str]:
    operation = await add_operation(store, clock)
    return {
        "report": await add_token(store, clock, operation),
        "ingest": await add_token(store, clock, operation, TokenScope.INGEST),
    }


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_database_outage_is_answered_at_once_and_healed_within_seconds(
    proxied: RunningServer, proxy: OutageProxy, secrets: dict[str, str]
) -> None:
    with proxied.client(secrets["report"]) as http:
        assert http.get(REPORT).status_code == 200
        assert http.get("/readyz").status_code == 200

        proxy.pause()
        for _ in range(3):
            answer, elapsed = timed(lambda: http.get("/readyz"))
            assert answer.status_code == 503, answer.text
            assert elapsed < READY_BOUND_SECONDS + 0.5
        # A call fails in the envelope, within the bounds on getting a connection.
        bound = proxied.settings.database_wait_seconds + 1.0
        for _ in range(3):
            answer, elapsed = timed(lambda: http.get(REPORT))
            assert answer.status_code == 503, answer.text
            assert answer.json()["msg"] == errors.DATABASE_UNAVAILABLE
            assert answer.headers["retry-after"] == "1"
            assert elapsed < bound
        with proxied.client(secrets["ingest"]) as ingest:
            answer, elapsed = timed(lambda: ingest.post("/api/v2/events", json={"events": []}))
            assert answer.status_code in (400, 503), answer.text
            assert elapsed < bound

        proxy.resume()
        resumed = time.monotonic()
        while http.get(REPORT).status_code != 200:
            assert time.monotonic() - resumed < BACK_WITHIN_SECONDS, "not back in time"
            time.sleep(0.05)
        assert http.get("/readyz").status_code == 200


# -- a full disk (SQLite) ----------------------------------------------------------

DISK_MB = 8
RESERVE = 2 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Any) -> Iterator[str]:
    """A directory on a file system of a few megabytes, mounted for the test."""
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(where)], check=True
    )
    try:
        yield str(where)
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


@pytest.fixture
async def full_disk_store(small_disk: str) -> AsyncIterator[Store]:
    url = f"sqlite:///{small_disk}/voxmeter.db"
    schema.upgrade(url)
    opened = await open_store(url)
    yield opened
    await opened.close()


def event_batch(prefix: str, count: int) -> list[dict[str, Any]]:
    attributes = {"note": "x" * 1000}
    return [
        {
            "id": f"{prefix}-{i}",
            "meter": "ivr_calls",
            "quantity": 1,
            "time": "2026-11-24T12:00:00Z",
            "attributes": attributes,
        }
        for i in range(count)
    ]


async def test_a_full_disk_refuses_uploads_507_and_keeps_serving_reports(
    full_disk_store: Store, clock: FakeClock
) -> None:
    operation = await add_operation(full_disk_store, clock)
    report = await add_token(full_disk_store, clock, operation)
    ingest = await add_token(full_disk_store, clock, operation, TokenScope.INGEST)
    settings = Settings(
        database_url=full_disk_store.url, min_free_disk_bytes=RESERVE, access_logs=False
    )
    served = serve(settings, clock)
    running = next(served)
    try:
        with running.client(ingest) as uploads, running.client(report) as reports:
            statuses = []
            for batch in range(4 * DISK_MB):
                answer = uploads.post(
                    "/api/v2/events", json={"events": event_batch(f"b{batch}", 200)}
                )
                statuses.append(answer.status_code)
                if answer.status_code != 200:
                    break
            assert statuses[-1] == 507, statuses
            assert set(statuses[:-1]) == {200}
            assert answer.json()["msg"] == errors.STORAGE_FULL
            assert answer.json()["error"] == "INSUFFICIENT STORAGE"
            # Reads keep being served, their calls still counted.
            for _ in range(5):
                assert reports.get(REPORT).status_code == 200
            ready = reports.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
            metrics = reports.get("/metrics").text
            free = [
                line
                for line in metrics.splitlines()
                if line.startswith("voxmeter_free_disk_bytes ")
            ]
            assert len(free) == 1 and float(free[0].split()[1]) < RESERVE
            # Invalid batches are not logged once the reserve is reached.
            invalid = [{**event, "quantity": "x"} for event in event_batch("bad", 200)]
            assert uploads.post("/api/v2/events", json={"events": invalid}).status_code == 400
    finally:
        next(served, None)


async def test_a_write_to_a_full_disk_is_store_full_not_an_internal_error(
    full_disk_store: Store, small_disk: str, clock: FakeClock
) -> None:
    operation = await add_operation(full_disk_store, clock)
    with open(f"{small_disk}/filler", "wb") as filler:
        with contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
    usage = Services.over(full_disk_store, Settings(database_url=full_disk_store.url), clock).usage
    events = await usage.validate(operation, event_batch("f", 2000), clock())
    with pytest.raises(StoreFull):
        await full_disk_store.record_events(operation.id, events, clock())
    assert await full_disk_store.ledger_size() == 0


async def test_the_rejection_log_keeps_the_latest_rows_and_counts_those_dropped(
    store: Store, clock: FakeClock
) -> None:
    first = await add_operation(store, clock)
    second = await add_operation(store, clock, name="Other BPO")

    async def log(operation_id: int, ids: str, keep_per_operation: int, keep: int) -> None:
        refused = [Rejection(i, event_id, "bad") for i, event_id in enumerate(ids)]
        await store.log_rejections(
            operation_id, refused, clock(), keep_per_operation=keep_per_operation, keep=keep
        )

    async def kept(operation_id: int) -> str:
        return "".join(r.event_id or "" for r in await store.recent_rejections(operation_id, 100))

    await log(first.id, "abcdef", 4, 100)
    assert (await kept(first.id), await store.dropped_rejections(first.id)) == ("fedc", 2)
    # Past the bound in total, the oldest rows of any operation go first.
    await log(second.id, "xyz", 4, 5)
    assert (await kept(first.id), await store.dropped_rejections(first.id)) == ("fe", 4)
    assert (await kept(second.id), await store.dropped_rejections(second.id)) == ("zyx", 0)


@pytest.mark.parametrize("settings_overrides", [{"calls_per_license": 1}])
async def test_an_invalid_batch_costs_a_call_and_is_not_logged_past_the_quota(
    server: RunningServer, store: Store, clock: FakeClock
) -> None:
    operation = await add_operation(store, clock)  # 3 licences: 3 calls a day
    ingest = await add_token(store, clock, operation, TokenScope.INGEST)
    invalid = {"events": [{"id": "e1", "meter": "no_such_meter", "quantity": 1}]}
    with server.client(ingest) as http:
        statuses = [http.post("/api/v2/events", json=invalid).status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 403]
    assert len(await store.recent_rejections(operation.id, 100)) == 3
