"""The connection pool every part of the PostgreSQL store shares, and its spelling of values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from voxmeter.storage import split_pgbouncer_flag
from voxmeter.storage.rows import Spelling, operation_columns

Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]
Connection = AsyncConnection[TupleRow]


async def _in_utc(conn: Connection) -> None:
    """Timestamps in UTC on every connection of the pool.

    A SET, not a startup ``options`` parameter (PgBouncer refuses those):
    TimeZone is a parameter PgBouncer tracks per client and sets again on
    whichever server connection runs the client's next transaction.
    """
    await conn.execute("SET TimeZone TO 'UTC'")


def _connection_arguments(url: str) -> tuple[str, dict[str, Any]]:
    conninfo, pgbouncer = split_pgbouncer_flag(url)
    kwargs: dict[str, Any] = {"autocommit": True}
    if pgbouncer:
        # In transaction mode each transaction may run on another server
        # connection, where a statement prepared on the last one is unknown.
        kwargs["prepare_threshold"] = None
    return conninfo, kwargs


async def connect(url: str) -> Connection:
    """One autocommit connection in UTC, made as the pool makes its own."""
    conninfo, kwargs = _connection_arguments(url)
    conn = await AsyncConnection.connect(conninfo, **kwargs)
    await _in_utc(conn)
    return conn


async def open_pool(url: str, size: int) -> Pool:
    """A pool of autocommit connections in UTC; ``?pgbouncer=true`` prepares nothing."""
    conninfo, kwargs = _connection_arguments(url)
    pool: Pool = AsyncConnectionPool(
        conninfo, min_size=1, max_size=size, kwargs=kwargs, configure=_in_utc, open=False
    )
    await pool.open(wait=True)
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
