"""Statements on PostgreSQL: a connection per call; numbering under an advisory lock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection, errors

from voxmeter.contract.meters import GAUGE_METERS
from voxmeter.storage.postgres.connection import connect
from voxmeter.storage.statements import (
    EventBehind,
    LedgerWindow,
    PendingStatement,
    PriceBook,
    PriceBookExists,
    StatementStore,
    StoredStatement,
)

_GAUGES = sorted(GAUGE_METERS)
_BOOK_COLUMNS = "id, name, currency, breakdown_attribute, created_at"
_STATEMENT_COLUMNS = "number, operation_id, month, closed_at, document"
# Taken by every close: statement numbers are gapless across operations.
_NUMBERING_LOCK = 72453

_EVENTS_AT = """
SELECT e.event_id, e.occurred_at, e.received_at, e.quantity,
       CASE c.action WHEN 'void' THEN NULL WHEN 'amend' THEN c.quantity ELSE e.quantity END,
       e.attributes
FROM events e
LEFT JOIN LATERAL (
    SELECT x.action, x.quantity FROM corrections x
    WHERE x.operation_id = e.operation_id AND x.event_id = e.event_id
      AND x.created_at <= %(until)s
    ORDER BY x.seq DESC LIMIT 1) c ON true
WHERE e.operation_id = %(operation)s AND e.meter = %(meter)s
  AND e.day BETWEEN %(first)s AND %(last)s AND e.received_at <= %(until)s
"""

_CHANGED_AFTER = """
  AND (e.received_at > %(after)s OR EXISTS (
       SELECT 1 FROM corrections y
       WHERE y.operation_id = e.operation_id AND y.event_id = e.event_id
         AND y.created_at > %(after)s AND y.created_at <= %(until)s))
"""


# The connection of the session the current task is in, and its store.
_SESSION: ContextVar[tuple[PostgresStatementStore, AsyncConnection[Any]] | None] = ContextVar(
    "postgres_statement_session", default=None
)


def _book(row: Any, versions: tuple[str, ...]) -> PriceBook:
    return PriceBook(row[0], row[1], row[2], row[3], row[4], versions)


def _statement(row: Any) -> StoredStatement:
    return StoredStatement(row[0], row[1], row[2], row[3], row[4])


class PostgresStatementStore(StatementStore):
    def __init__(self, url: str) -> None:
        self._url = url

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection[Any]]:
        session = _SESSION.get()
        if session is not None and session[0] is self:
            yield session[1]
            return
        conn = await connect(self._url)
        async with conn:
            yield conn

    @asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        async with self._connect() as conn:
            token = _SESSION.set((self, conn))
            try:
                yield
            finally:
                _SESSION.reset(token)

    async def _all(self, query: str, params: Any = ()) -> list[Any]:
        async with self._connect() as conn:
            return await (await conn.execute(query, params)).fetchall()

    async def _versions(self, conn: AsyncConnection[Any], price_book_id: int) -> tuple[str, ...]:
        cursor = await conn.execute(
            "SELECT sheet FROM price_book_versions WHERE price_book_id = %s"
            " ORDER BY effective_month",
            (price_book_id,),
        )
        return tuple(sheet for (sheet,) in await cursor.fetchall())

    # -- price books ---------------------------------------------------------

    async def create_price_book(
        self, name: str, currency: str, breakdown_attribute: str | None, now: datetime
    ) -> PriceBook:
        try:
            rows = await self._all(
                "INSERT INTO price_books (name, currency, breakdown_attribute, created_at)"
                f" VALUES (%s, %s, %s, %s) RETURNING {_BOOK_COLUMNS}",
                (name, currency, breakdown_attribute, now),
            )
        except errors.UniqueViolation:
            raise PriceBookExists(name) from None
        return _book(rows[0], ())

    async def get_price_book(self, name: str) -> PriceBook | None:
        async with self._connect() as conn:
            cursor = await conn.execute(
                f"SELECT {_BOOK_COLUMNS} FROM price_books WHERE name = %s", (name,)
            )
            row = await cursor.fetchone()
            return None if row is None else _book(row, await self._versions(conn, row[0]))

    async def price_book_by_id(self, price_book_id: int) -> PriceBook:
        async with self._connect() as conn:
            cursor = await conn.execute(
                f"SELECT {_BOOK_COLUMNS} FROM price_books WHERE id = %s", (price_book_id,)
            )
            row = await cursor.fetchone()
            return _book(row, await self._versions(conn, price_book_id))

    async def list_price_books(self) -> list[PriceBook]:
        async with self._connect() as conn:
            cursor = await conn.execute(f"SELECT {_BOOK_COLUMNS} FROM price_books ORDER BY name")
            return [
                _book(row, await self._versions(conn, row[0])) for row in await cursor.fetchall()
            ]

    async def put_version(
        self, price_book_id: int, effective_month: str, sheet: str, now: datetime
    ) -> None:
        await self._all(
            "INSERT INTO price_book_versions (price_book_id, effective_month, sheet, created_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (price_book_id, effective_month)"
            " DO UPDATE SET sheet = excluded.sheet, created_at = excluded.created_at"
            " RETURNING price_book_id",
            (price_book_id, effective_month, sheet, now),
        )

    async def subscribe(self, operation_id: int, price_book_id: int, now: datetime) -> None:
        await self._all(
            "INSERT INTO subscriptions (operation_id, price_book_id, created_at)"
            " VALUES (%s, %s, %s) ON CONFLICT (operation_id) DO UPDATE SET"
            " price_book_id = excluded.price_book_id, created_at = excluded.created_at"
            " RETURNING operation_id",
            (operation_id, price_book_id, now),
        )

    async def subscription(self, operation_id: int) -> int | None:
        rows = await self._all(
            "SELECT price_book_id FROM subscriptions WHERE operation_id = %s", (operation_id,)
        )
        return int(rows[0][0]) if rows else None

    async def subscribers(self, price_book_id: int) -> list[int]:
        rows = await self._all(
            "SELECT operation_id FROM subscriptions WHERE price_book_id = %s ORDER BY operation_id",
            (price_book_id,),
        )
        return [int(operation_id) for (operation_id,) in rows]

    # -- the ledger ----------------------------------------------------------

    async def month_quantities(
        self, operation_id: int, first_day: date, last_day: date
    ) -> dict[str, int]:
        async with self._connect() as conn:
            sums = await (
                await conn.execute(
                    "SELECT meter, sum(total) FROM rollups WHERE operation_id = %s"
                    " AND day BETWEEN %s AND %s AND meter <> ALL(%s) GROUP BY meter",
                    (operation_id, first_day, last_day, _GAUGES),
                )
            ).fetchall()
            gauges = await (
                await conn.execute(
                    "SELECT DISTINCT ON (meter) meter, gauge_value FROM rollups"
                    " WHERE operation_id = %s AND day <= %s AND meter = ANY(%s)"
                    " AND gauge_value IS NOT NULL ORDER BY meter, day DESC",
                    (operation_id, last_day, _GAUGES),
                )
            ).fetchall()
        quantities = {meter: int(total) for meter, total in sums}
        quantities.update((meter, int(value)) for meter, value in gauges)
        return quantities

    async def breakdown(
        self, operation_id: int, first_day: date, last_day: date, attribute: str
    ) -> dict[tuple[str, str], int]:
        rows = await self._all(
            "SELECT e.meter, coalesce(e.attributes::jsonb ->> %s, ''),"
            " sum(CASE c.action WHEN 'void' THEN 0 WHEN 'amend' THEN c.quantity"
            "     ELSE e.quantity END)"
            " FROM events e LEFT JOIN LATERAL ("
            "   SELECT x.action, x.quantity FROM corrections x"
            "   WHERE x.operation_id = e.operation_id AND x.event_id = e.event_id"
            "   ORDER BY x.seq DESC LIMIT 1) c ON true"
            " WHERE e.operation_id = %s AND e.day BETWEEN %s AND %s AND e.meter <> ALL(%s)"
            " GROUP BY 1, 2",
            (attribute, operation_id, first_day, last_day, _GAUGES),
        )
        return {(meter, value): int(total) for meter, value, total in rows}

    async def events_behind(self, window: LedgerWindow) -> list[EventBehind]:
        query = _EVENTS_AT
        params: dict[str, Any] = {
            "operation": window.operation_id,
            "meter": window.meter,
            "first": window.first_day,
            "last": window.last_day,
            "until": window.until,
        }
        if window.changed_after is not None:
            query += _CHANGED_AFTER
            params["after"] = window.changed_after
        rows = await self._all(query + " ORDER BY e.occurred_at, e.seq", params)
        return [EventBehind(*row) for row in rows]

    # -- statements ----------------------------------------------------------

    async def close_statements(
        self, month: str, pending: Sequence[PendingStatement], now: datetime
    ) -> list[StoredStatement]:
        kept = []
        async with self._connect() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_NUMBERING_LOCK,))
            cursor = await conn.execute("SELECT coalesce(max(number), 0) + 1 FROM statements")
            (number,) = await cursor.fetchone() or (1,)
            cursor = await conn.execute(
                "SELECT operation_id FROM statements WHERE month = %s AND operation_id = ANY(%s)",
                (month, [statement.operation_id for statement in pending]),
            )
            closed = {operation_id for (operation_id,) in await cursor.fetchall()}
            for statement in pending:
                if statement.operation_id in closed:
                    continue
                cursor = await conn.execute(
                    "INSERT INTO statements (number, operation_id, month, closed_at, document)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (operation_id, month) DO NOTHING"
                    f" RETURNING {_STATEMENT_COLUMNS}",
                    (number, statement.operation_id, month, now, statement.document_for(number)),
                )
                row = await cursor.fetchone()
                if row is not None:
                    kept.append(_statement(row))
                    number += 1
        return kept

    async def statements(
        self, operation_id: int | None = None, month: str | None = None
    ) -> list[StoredStatement]:
        rows = await self._all(
            f"SELECT {_STATEMENT_COLUMNS} FROM statements"
            " WHERE (%(operation)s::bigint IS NULL OR operation_id = %(operation)s)"
            " AND (%(month)s::text IS NULL OR month = %(month)s) ORDER BY number",
            {"operation": operation_id, "month": month},
        )
        return [_statement(row) for row in rows]

    async def statement(self, number: int) -> StoredStatement | None:
        rows = await self._all(
            f"SELECT {_STATEMENT_COLUMNS} FROM statements WHERE number = %s", (number,)
        )
        return _statement(rows[0]) if rows else None
