"""Operations in SQLite."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from voxmeter.domain.clock import utc_micros
from voxmeter.domain.models import NewOperation, Operation, OperationChanges
from voxmeter.storage.ports import OperationExists, OperationStore, UnknownOperation
from voxmeter.storage.sqlite.connection import SPELLING, SQLitePart

_SELECT = f"SELECT {SPELLING.operation_columns} FROM operations o"


class SQLiteOperations(SQLitePart, OperationStore):
    def _set_services(self, operation_id: int, services: frozenset[str]) -> None:
        self._db.execute("DELETE FROM operation_services WHERE operation_id = ?", (operation_id,))
        self._db.executemany(
            "INSERT INTO operation_services (operation_id, service) VALUES (?, ?)",
            [(operation_id, service) for service in sorted(services)],
        )

    async def create_operation(self, new: NewOperation, now: datetime) -> Operation:
        try:
            with self._write() as db:
                (operation_id,) = db.execute(
                    "INSERT INTO operations (name, server_id, timezone, licenses, pbx, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    (new.name, new.server_id, new.timezone, new.licenses, new.pbx, utc_micros(now)),
                ).fetchone()
                self._set_services(operation_id, new.services)
        except sqlite3.IntegrityError as exc:
            raise OperationExists(new.name) from exc
        return await self._stored_operation(new.name)

    async def update_operation(self, name: str, changes: OperationChanges) -> Operation:
        with self._write() as db:
            row = db.execute("SELECT id FROM operations WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownOperation(name)
            (operation_id,) = row
            db.execute(
                "UPDATE operations SET licenses = coalesce(?, licenses),"
                " server_id = coalesce(?, server_id), timezone = coalesce(?, timezone),"
                " pbx = coalesce(?, pbx), revision = revision + 1 WHERE id = ?",
                (changes.licenses, changes.server_id, changes.timezone, changes.pbx, operation_id),
            )
            if changes.services is not None:
                self._set_services(operation_id, changes.services)
        return await self._stored_operation(name)

    async def get_operation(self, name: str) -> Operation | None:
        row = self._db.execute(f"{_SELECT} WHERE o.name = ?", (name,)).fetchone()
        return None if row is None else SPELLING.operation(row)

    async def list_operations(self) -> list[Operation]:
        rows = self._db.execute(f"{_SELECT} ORDER BY o.name").fetchall()
        return [SPELLING.operation(row) for row in rows]
