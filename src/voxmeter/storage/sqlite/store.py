"""The SQLite store: its parts composed, the figure cache in front of its rollups."""

from __future__ import annotations

import os

from voxmeter.storage.figures import CachedFigures, FigureCache
from voxmeter.storage.ports import Store
from voxmeter.storage.slotlocks import slot_locks
from voxmeter.storage.sqlite.admission import SQLiteAdmission
from voxmeter.storage.sqlite.alerts import SQLiteAlerts
from voxmeter.storage.sqlite.connection import connect, sqlite_path
from voxmeter.storage.sqlite.ledger import SQLiteLedger
from voxmeter.storage.sqlite.operations import SQLiteOperations
from voxmeter.storage.sqlite.rollups import SQLiteRollups
from voxmeter.storage.sqlite.tokens import SQLiteTokens


class SQLiteStore(
    CachedFigures,
    SQLiteAdmission,
    SQLiteLedger,
    SQLiteOperations,
    SQLiteTokens,
    SQLiteRollups,
    SQLiteAlerts,
    Store,
):
    def __init__(self, url: str) -> None:
        self.url = url
        self._db = connect(url)
        self._slots = slot_locks(sqlite_path(url) + "-slots")
        self.figures = FigureCache()
        self._start_admissions()

    async def close(self) -> None:
        self._db.close()

    async def schema_revision(self) -> str | None:
        row = self._db.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])

    def free_disk_bytes(self) -> int:
        stats = os.statvfs(os.path.dirname(os.path.abspath(sqlite_path(self.url))))
        return stats.f_bavail * stats.f_frsize

    async def ledger_size(self) -> int:
        (size,) = self._db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        return int(size)
