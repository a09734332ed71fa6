"""Operations in PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from psycopg import errors

from voxmeter.domain.models import NewOperation, Operation, OperationChanges
from voxmeter.storage.ports import OperationExists, OperationStore, UnknownOperation
from voxmeter.storage.postgres.connection import SPELLING, Connection, PostgresPart

_SELECT = f"SELECT {SPELLING.operation_columns} FROM operations o"


class PostgresOperations(PostgresPart, OperationStore):
    async def create_operation(self, new: NewOperation, now: datetime) -> Operation:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cursor = await conn.execute(
                    "INSERT INTO operations (name, server_id, timezone, licenses, pbx, created_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    (new.name, new.server_id, new.timezone, new.licenses, new.pbx, now),
                )
                row = await cursor.fetchone()
                assert row is not None
                await self._set_services(conn, row[0], new.services)
        except errors.UniqueViolation as exc:
            raise OperationExists(new.name) from exc
        return await self._stored_operation(new.name)

    @staticmethod
    async def _set_services(conn: Connection, operation_id: int, services: frozenset[str]) -> None:
        await conn.execute(
            "DELETE FROM operation_services WHERE operation_id = %s", (operation_id,)
        )
        await conn.execute(
            "INSERT INTO operation_services (operation_id, service) SELECT %s, unnest(%s::text[])",
            (operation_id, sorted(services)),
        )

    async def update_operation(self, name: str, changes: OperationChanges) -> Operation:
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "UPDATE operations SET licenses = coalesce(%s, licenses),"
                " server_id = coalesce(%s, server_id), timezone = coalesce(%s, timezone),"
                " pbx = coalesce(%s, pbx), revision = revision + 1 WHERE name = %s RETURNING id",
                (changes.licenses, changes.server_id, changes.timezone, changes.pbx, name),
            )
            row = await cursor.fetchone()
            if row is None:
                raise UnknownOperation(name)
            if changes.services is not None:
                await self._set_services(conn, row[0], changes.services)
        return await self._stored_operation(name)

    async def get_operation(self, name: str) -> Operation | None:
        row = await self._one(f"{_SELECT} WHERE o.name = %s", (name,))
        return None if row is None else SPELLING.operation(row)

    async def list_operations(self) -> list[Operation]:
        rows = await self._all(f"{_SELECT} ORDER BY o.name")
        return [SPELLING.operation(row) for row in rows]
