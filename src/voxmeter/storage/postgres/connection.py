"""The connection pool every part of the PostgreSQL store shares, and its spelling of values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from voxmeter.storage.rows import Spelling, operation_columns

Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]
Connection = AsyncConnection[TupleRow]


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
