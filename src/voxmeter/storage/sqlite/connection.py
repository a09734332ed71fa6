"""The SQLite connection every part of the store shares, and how values are spelled in it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from voxmeter.domain.clock import EPOCH
from voxmeter.storage.ports import StoreFull
from voxmeter.storage.rows import Spelling, operation_columns

SQLITE_FULL = 13  # "database or disk is full"; sqlite3 names it from Python 3.11.4 on

# SQLite allows at most 32766 host parameters per statement.
IN_CHUNK = 900


def sqlite_path(url: str) -> str:
    """The file path in ``sqlite:///relative.db`` or ``sqlite:////absolute.db``."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite URL: {url!r}")
    return url[len("sqlite:///") :]


def moment(micros: int) -> datetime:
    """A stored moment (UTC microseconds since the epoch)."""
    return EPOCH + timedelta(microseconds=micros)


def _optional_moment(micros: int | None) -> datetime | None:
    return None if micros is None else moment(micros)


def _services(joined: str | None) -> frozenset[str]:
    return frozenset(joined.split(",")) if joined else frozenset()


SPELLING = Spelling(
    operation_columns=operation_columns(
        "(SELECT group_concat(s.service) FROM operation_services s WHERE s.operation_id = o.id)"
    ),
    moment=moment,
    optional_moment=_optional_moment,
    services=_services,
)


def connect(url: str) -> sqlite3.Connection:
    db = sqlite3.connect(sqlite_path(url), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL is safe against process crashes; ledger commits switch to
    # FULL so an acknowledged batch also survives a power loss.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=10000")
    db.execute("PRAGMA foreign_keys=ON")
    return db


class SQLitePart:
    """What each part of the store is built on: the connection and its write transactions."""

    _db: sqlite3.Connection

    @contextmanager
    def _write(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding SQLite's write lock from its start.

        ``durable`` ones (the ledger's) also survive a power loss.
        """
        if durable:
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            # A failed COMMIT may have rolled back already (a full disk does).
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode == SQLITE_FULL:
                raise StoreFull(str(exc)) from exc
            raise
        finally:
            if durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
