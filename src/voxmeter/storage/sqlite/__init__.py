"""The embedded default store: one SQLite file in WAL mode.

One module per port (operations, tokens, admission, ledger, rollups) over
the one connection of :mod:`.connection`; :mod:`.store` composes them into
:class:`SQLiteStore`. Statements run synchronously on the event loop's
thread: they are short primary-key reads and writes, and on this workload
that beats a thread pool or aiosqlite by several times. Several worker
processes may share the file; SQLite serialises their writes.
"""

from __future__ import annotations

from voxmeter.storage.sqlite.connection import sqlite_path
from voxmeter.storage.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore", "sqlite_path"]
