"""The connection pool every part of the PostgreSQL store shares, and its spelling of values."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection, OperationalError
from psycopg.errors import DiskFull
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from voxmeter.storage import split_pgbouncer_flag
from voxmeter.storage.ports import DatabaseTimeouts, StoreFull, StoreUnavailable
from voxmeter.storage.rows import Spelling, operation_columns

Connection = AsyncConnection[TupleRow]
log = logging.getLogger("voxmeter.storage")


class Pool(AsyncConnectionPool[Connection]):
    """A pool whose failures are the store's: an outage is :class:`StoreUnavailable`.

    Every way the database can fail to answer (refused or lost connection,
    connect or pool wait past its bound, statement timeout) is a psycopg
    ``OperationalError``; a full disk there is :class:`StoreFull`. After a
    failure the idle connections are checked in the background, so that
    connections the database dropped are replaced before a caller meets them.
    """

    _checking: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Connection]:
        try:
            async with super().connection(timeout) as conn:
                yield conn
        except DiskFull as exc:
            raise StoreFull(str(exc)) from exc
        except OperationalError as exc:
            log.warning("database unavailable: %s", type(exc).__name__)
            self._check_idle()
            raise StoreUnavailable(type(exc).__name__) from exc

    def _check_idle(self) -> None:
        if self._checking is None or self._checking.done():
            self._checking = asyncio.get_running_loop().create_task(self._check_quietly())

    async def _check_quietly(self) -> None:
        try:
            await self.check()
        except Exception as exc:  # the next caller meets the failure and reports it
            log.debug("pool check failed: %s", type(exc).__name__)


def _configure(statement_timeout: float) -> Any:
    milliseconds = max(1, round(statement_timeout * 1000))

    async def configure(conn: Connection) -> None:
        """UTC timestamps and the statement timeout on every connection of the pool.

        SETs, not a startup ``options`` parameter (PgBouncer refuses those):
        PgBouncer tracks TimeZone per client and sets it again on whichever
        server connection runs the client's next transaction; statement_timeout
        set here holds on a direct connection and in PgBouncer's session mode.
        """
        await conn.execute("SET TimeZone TO 'UTC'")
        await conn.execute(f"SET statement_timeout TO {milliseconds}")

    return configure


def _connection_arguments(url: str, timeouts: DatabaseTimeouts) -> tuple[str, dict[str, Any]]:
    conninfo, pgbouncer = split_pgbouncer_flag(url)
    # libpq counts its connect timeout in whole seconds, and takes 1 as 2.
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "connect_timeout": max(2, round(timeouts.connect_seconds)),
    }
    if pgbouncer:
        # In transaction mode each transaction may run on another server
        # connection, where a statement prepared on the last one is unknown.
        kwargs["prepare_threshold"] = None
    return conninfo, kwargs


async def connect(url: str, timeouts: DatabaseTimeouts | None = None) -> Connection:
    """One connection made and configured as the pool makes its own."""
    timeouts = timeouts or DatabaseTimeouts()
    conninfo, kwargs = _connection_arguments(url, timeouts)
    conn = await AsyncConnection.connect(conninfo, **kwargs)
    await _configure(timeouts.statement_seconds)(conn)
    return conn


async def open_pool(url: str, size: int, timeouts: DatabaseTimeouts | None = None) -> Pool:
    """A pool of autocommit connections in UTC; ``?pgbouncer=true`` prepares nothing."""
    timeouts = timeouts or DatabaseTimeouts()
    conninfo, kwargs = _connection_arguments(url, timeouts)
    pool = Pool(
        conninfo,
        min_size=1,
        max_size=size,
        kwargs=kwargs,
        configure=_configure(timeouts.statement_seconds),
        open=False,
        # A call waits this long for a connection, then is answered 503.
        timeout=timeouts.wait_seconds,
        # A lost connection is retried for this long only (with the pool's
        # growing backoff), then given up: the next caller that needs a
        # connection starts a fresh attempt at once. A longer retry would let
        # the backoff grow to many seconds and keep the service down that long
        # after the database is back.
        reconnect_timeout=timeouts.wait_seconds,
    )
    await pool.open(wait=True, timeout=timeouts.wait_seconds + timeouts.connect_seconds)
    return pool


def _same(value: Any) -> Any:
    return value


SPELLING = Spelling(
    operation_columns=operation_columns(
        "ARRAY(SELECT s.service FROM operation_services s WHERE s.operation_id = o.id)"
    ),
    moment=_same,  # timestamptz arrive as aware datetimes already
    optional_moment=_same,
    services=frozenset,
)


class PostgresPart:
    """What each part of the store is built on: the pool, and one-statement round trips."""

    _pool: Pool

    async def _one(self, query: str, params: Sequence[Any] = ()) -> Any:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchone()

    async def _all(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()
