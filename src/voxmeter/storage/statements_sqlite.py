"""Statements on SQLite: a connection per call, writes under SQLite's write lock."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, closing, contextmanager
from contextvars import ContextVar
from datetime import date, datetime, timedelta

from voxmeter.contract.meters import GAUGE_METERS
from voxmeter.domain.clock import EPOCH, utc_micros
from voxmeter.storage.sqlite import sqlite_path
from voxmeter.storage.statements import (
    EventBehind,
    LedgerWindow,
    PendingStatement,
    PriceBook,
    PriceBookExists,
    StatementStore,
    StoredStatement,
)

_GAUGE_LIST = ",".join(f"'{meter}'" for meter in sorted(GAUGE_METERS))
_BOOK_COLUMNS = "id, name, currency, breakdown_attribute, created_at"
_STATEMENT_COLUMNS = "number, operation_id, month, closed_at, document"

# An event as it counted at :until: its latest correction made by then.
_EVENTS_AT = """
SELECT e.event_id, e.occurred_at, e.received_at, e.quantity,
       CASE c.action WHEN 'void' THEN NULL WHEN 'amend' THEN c.quantity ELSE e.quantity END,
       e.attributes
FROM events e
LEFT JOIN corrections c ON c.seq = (
    SELECT max(x.seq) FROM corrections x
    WHERE x.operation_id = e.operation_id AND x.event_id = e.event_id
      AND x.created_at <= :until)
WHERE e.operation_id = :operation AND e.meter = :meter
  AND e.day BETWEEN :first AND :last AND e.received_at <= :until
"""

_CHANGED_AFTER = """
  AND (e.received_at > :after OR EXISTS (
       SELECT 1 FROM corrections y
       WHERE y.operation_id = e.operation_id AND y.event_id = e.event_id
         AND y.created_at > :after AND y.created_at <= :until))
"""


# The connection of the session the current task is in, and its store.
_SESSION: ContextVar[tuple[SQLiteStatementStore, sqlite3.Connection] | None] = ContextVar(
    "sqlite_statement_session", default=None
)


def _moment(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _book(row: tuple[int, str, str, str | None, int], versions: tuple[str, ...]) -> PriceBook:
    return PriceBook(row[0], row[1], row[2], row[3], _moment(row[4]), versions)


def _statement(row: tuple[int, int, str, int, str]) -> StoredStatement:
    return StoredStatement(row[0], row[1], row[2], _moment(row[3]), row[4])


class SQLiteStatementStore(StatementStore):
    def __init__(self, url: str) -> None:
        self._path = sqlite_path(url)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        session = _SESSION.get()
        if session is not None and session[0] is self:
            yield session[1]
            return
        with closing(sqlite3.connect(self._path, isolation_level=None)) as db:
            db.execute("PRAGMA busy_timeout=10000")
            db.execute("PRAGMA foreign_keys=ON")
            yield db

    @asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        with self._connect() as db:
            token = _SESSION.set((self, db))
            try:
                yield
            finally:
                _SESSION.reset(token)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- price books ---------------------------------------------------------

    def _versions(self, db: sqlite3.Connection, price_book_id: int) -> tuple[str, ...]:
        rows = db.execute(
            "SELECT sheet FROM price_book_versions WHERE price_book_id = ?"
            " ORDER BY effective_month",
            (price_book_id,),
        ).fetchall()
        return tuple(sheet for (sheet,) in rows)

    async def create_price_book(
        self, name: str, currency: str, breakdown_attribute: str | None, now: datetime
    ) -> PriceBook:
        try:
            with self._write() as db:
                row = db.execute(
                    "INSERT INTO price_books (name, currency, breakdown_attribute, created_at)"
                    f" VALUES (?, ?, ?, ?) RETURNING {_BOOK_COLUMNS}",
                    (name, currency, breakdown_attribute, utc_micros(now)),
                ).fetchone()
        except sqlite3.IntegrityError:
            raise PriceBookExists(name) from None
        return _book(row, ())

    async def get_price_book(self, name: str) -> PriceBook | None:
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_BOOK_COLUMNS} FROM price_books WHERE name = ?", (name,)
            ).fetchone()
            return None if row is None else _book(row, self._versions(db, row[0]))

    async def price_book_by_id(self, price_book_id: int) -> PriceBook:
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_BOOK_COLUMNS} FROM price_books WHERE id = ?", (price_book_id,)
            ).fetchone()
            return _book(row, self._versions(db, price_book_id))

    async def list_price_books(self) -> list[PriceBook]:
        with self._connect() as db:
            rows = db.execute(f"SELECT {_BOOK_COLUMNS} FROM price_books ORDER BY name").fetchall()
            return [_book(row, self._versions(db, row[0])) for row in rows]

    async def put_version(
        self, price_book_id: int, effective_month: str, sheet: str, now: datetime
    ) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO price_book_versions (price_book_id, effective_month, sheet,"
                " created_at) VALUES (?, ?, ?, ?) ON CONFLICT (price_book_id, effective_month)"
                " DO UPDATE SET sheet = excluded.sheet, created_at = excluded.created_at",
                (price_book_id, effective_month, sheet, utc_micros(now)),
            )

    async def subscribe(self, operation_id: int, price_book_id: int, now: datetime) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO subscriptions (operation_id, price_book_id, created_at)"
                " VALUES (?, ?, ?) ON CONFLICT (operation_id) DO UPDATE SET"
                " price_book_id = excluded.price_book_id, created_at = excluded.created_at",
                (operation_id, price_book_id, utc_micros(now)),
            )

    async def subscription(self, operation_id: int) -> int | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT price_book_id FROM subscriptions WHERE operation_id = ?", (operation_id,)
            ).fetchone()
            return None if row is None else int(row[0])

    async def subscribers(self, price_book_id: int) -> list[int]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT operation_id FROM subscriptions WHERE price_book_id = ?"
                " ORDER BY operation_id",
                (price_book_id,),
            ).fetchall()
            return [int(operation_id) for (operation_id,) in rows]

    # -- the ledger ----------------------------------------------------------

    async def month_quantities(
        self, operation_id: int, first_day: date, last_day: date
    ) -> dict[str, int]:
        with self._connect() as db:
            sums = db.execute(
                "SELECT meter, sum(total) FROM rollups WHERE operation_id = ?"
                f" AND day BETWEEN ? AND ? AND meter NOT IN ({_GAUGE_LIST}) GROUP BY meter",
                (operation_id, first_day.isoformat(), last_day.isoformat()),
            ).fetchall()
            gauges = db.execute(
                "SELECT meter, gauge_value FROM rollups WHERE operation_id = ?"
                f" AND day <= ? AND meter IN ({_GAUGE_LIST}) AND gauge_value IS NOT NULL"
                " ORDER BY day",
                (operation_id, last_day.isoformat()),
            ).fetchall()
        quantities = {meter: int(total) for meter, total in sums}
        quantities.update((meter, int(value)) for meter, value in gauges)
        return quantities

    async def breakdown(
        self, operation_id: int, first_day: date, last_day: date, attribute: str
    ) -> dict[tuple[str, str], int]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT e.meter, coalesce(CAST(json_extract(e.attributes, ?) AS TEXT), ''),"
                " sum(CASE c.action WHEN 'void' THEN 0 WHEN 'amend' THEN c.quantity"
                "     ELSE e.quantity END)"
                " FROM events e LEFT JOIN corrections c ON c.seq = ("
                "   SELECT max(x.seq) FROM corrections x"
                "   WHERE x.operation_id = e.operation_id AND x.event_id = e.event_id)"
                " WHERE e.operation_id = ? AND e.day BETWEEN ? AND ?"
                f" AND e.meter NOT IN ({_GAUGE_LIST}) GROUP BY 1, 2",
                (f'$."{attribute}"', operation_id, first_day.isoformat(), last_day.isoformat()),
            ).fetchall()
        return {(meter, value): int(total) for meter, value, total in rows}

    async def events_behind(self, window: LedgerWindow) -> list[EventBehind]:
        query = _EVENTS_AT
        params: dict[str, object] = {
            "operation": window.operation_id,
            "meter": window.meter,
            "first": window.first_day.isoformat(),
            "last": window.last_day.isoformat(),
            "until": utc_micros(window.until),
        }
        if window.changed_after is not None:
            query += _CHANGED_AFTER
            params["after"] = utc_micros(window.changed_after)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY e.occurred_at, e.seq", params).fetchall()
        return [
            EventBehind(event_id, _moment(occurred), _moment(received), quantity, counted, attrs)
            for event_id, occurred, received, quantity, counted, attrs in rows
        ]

    # -- statements ----------------------------------------------------------

    async def close_statements(
        self, month: str, pending: Sequence[PendingStatement], now: datetime
    ) -> list[StoredStatement]:
        kept = []
        with self._write() as db:
            (number,) = db.execute("SELECT coalesce(max(number), 0) + 1 FROM statements").fetchone()
            for statement in pending:
                if db.execute(
                    "SELECT 1 FROM statements WHERE operation_id = ? AND month = ?",
                    (statement.operation_id, month),
                ).fetchone():
                    continue
                row = db.execute(
                    "INSERT INTO statements (number, operation_id, month, closed_at, document)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (operation_id, month) DO NOTHING"
                    f" RETURNING {_STATEMENT_COLUMNS}",
                    (
                        number,
                        statement.operation_id,
                        month,
                        utc_micros(now),
                        statement.document_for(number),
                    ),
                ).fetchone()
                if row is not None:
                    kept.append(_statement(row))
                    number += 1
        return kept

    async def statements(
        self, operation_id: int | None = None, month: str | None = None
    ) -> list[StoredStatement]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_STATEMENT_COLUMNS} FROM statements"
                " WHERE (:operation IS NULL OR operation_id = :operation)"
                " AND (:month IS NULL OR month = :month) ORDER BY number",
                {"operation": operation_id, "month": month},
            ).fetchall()
        return [_statement(row) for row in rows]

    async def statement(self, number: int) -> StoredStatement | None:
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_STATEMENT_COLUMNS} FROM statements WHERE number = ?", (number,)
            ).fetchone()
        return None if row is None else _statement(row)
