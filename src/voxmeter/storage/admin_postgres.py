"""The console's storage port on PostgreSQL: a small pool of its own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from psycopg import errors

from voxmeter.domain.admins import AuditEntry, Identity, IdentityKind, Role
from voxmeter.storage.admin import (
    STATES,
    AdminStore,
    EventQuery,
    EventRow,
    IdentityExists,
    PeriodFigures,
)
from voxmeter.storage.postgres.connection import Pool, PostgresPart, open_pool

_COLUMNS = ("id", "name", "role", "kind", "key_id", "created_at", "disabled_at")
_IDENTITY = ", ".join(f"i.{column}" for column in _COLUMNS)


def _identity(row: Sequence[Any]) -> Identity:
    return Identity(row[0], row[1], Role(row[2]), IdentityKind(row[3]), row[4], row[5], row[6])


class PostgresAdminStore(PostgresPart, AdminStore):
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, url: str) -> PostgresAdminStore:
        # The console's traffic is a person's clicks: two connections suffice.
        return cls(await open_pool(url, 2))

    async def close(self) -> None:
        await self._pool.close()

    async def create_identity(
        self,
        name: str,
        role: Role,
        kind: IdentityKind,
        key_id: str | None,
        secret_hash: bytes,
        now: datetime,
    ) -> Identity:
        try:
            row = await self._one(
                "INSERT INTO admin_identities (name, role, kind, key_id, secret_hash, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (name, role.value, kind.value, key_id, secret_hash, now),
            )
        except errors.UniqueViolation:
            raise IdentityExists(name) from None
        return Identity(row[0], name, role, kind, key_id, now)

    async def user(self, name: str) -> tuple[Identity, bytes] | None:
        row = await self._one(
            f"SELECT {_IDENTITY}, i.secret_hash FROM admin_identities i"
            " WHERE i.name = %s AND i.kind = 'user' AND i.disabled_at IS NULL",
            (name,),
        )
        return None if row is None else (_identity(row), bytes(row[7]))

    async def key(self, key_id: str) -> tuple[Identity, bytes] | None:
        row = await self._one(
            f"SELECT {_IDENTITY}, i.secret_hash FROM admin_identities i"
            " WHERE i.key_id = %s AND i.disabled_at IS NULL",
            (key_id,),
        )
        return None if row is None else (_identity(row), bytes(row[7]))

    async def identities(self) -> list[Identity]:
        rows = await self._all(f"SELECT {_IDENTITY} FROM admin_identities i ORDER BY i.id")
        return [_identity(row) for row in rows]

    async def disable_identity(self, name: str, now: datetime) -> Identity | None:
        # One statement: no session outlives the identity's disabling.
        row = await self._one(
            "WITH disabled AS (UPDATE admin_identities SET disabled_at = %s"
            f" WHERE name = %s AND disabled_at IS NULL RETURNING {', '.join(_COLUMNS)}),"
            " ended AS (DELETE FROM admin_sessions"
            " WHERE identity_id IN (SELECT id FROM disabled))"
            " SELECT * FROM disabled",
            (now, name),
        )
        return None if row is None else _identity(row)

    async def create_session(
        self, session_hash: bytes, identity_id: int, csrf: str, now: datetime, expires: datetime
    ) -> None:
        await self._one(
            "INSERT INTO admin_sessions (session_hash, identity_id, csrf, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING 1",
            (session_hash, identity_id, csrf, now, expires),
        )

    async def session(self, session_hash: bytes, now: datetime) -> tuple[Identity, str] | None:
        row = await self._one(
            f"SELECT {_IDENTITY}, s.csrf FROM admin_sessions s"
            " JOIN admin_identities i ON i.id = s.identity_id"
            " WHERE s.session_hash = %s AND s.expires_at > %s AND i.disabled_at IS NULL",
            (session_hash, now),
        )
        return None if row is None else (_identity(row), str(row[7]))

    async def end_session(self, session_hash: bytes) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM admin_sessions WHERE session_hash = %s", (session_hash,)
            )

    async def end_expired_sessions(self, now: datetime) -> int:
        async with self._pool.connection() as conn:
            cursor = await conn.execute("DELETE FROM admin_sessions WHERE expires_at <= %s", (now,))
            return cursor.rowcount

    async def append_audit(
        self,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        before: str | None,
        after: str | None,
    ) -> None:
        await self._one(
            "INSERT INTO admin_audit (at, actor, action, target, before, after)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING seq",
            (at, actor, action, target, before, after),
        )

    async def audit_log(self, limit: int) -> list[AuditEntry]:
        rows = await self._all(
            "SELECT seq, at, actor, action, target, before, after FROM admin_audit"
            " ORDER BY seq DESC LIMIT %s",
            (limit,),
        )
        return [AuditEntry(*row) for row in rows]

    async def archive_operation(self, operation_id: int, now: datetime) -> bool:
        row = await self._one(
            "INSERT INTO archived_operations (operation_id, archived_at) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            (operation_id, now),
        )
        return row is not None

    async def archived_operations(self) -> set[int]:
        return {row[0] for row in await self._all("SELECT operation_id FROM archived_operations")}

    async def calls_on(self, operation_id: int, day: date) -> int:
        row = await self._one(
            "SELECT used FROM operation_calls WHERE operation_id = %s AND day = %s",
            (operation_id, day),
        )
        return 0 if row is None else int(row[0])

    async def calls_on_day(self, operation_ids: Sequence[int], day: date) -> dict[int, int]:
        rows = await self._all(
            "SELECT operation_id, used FROM operation_calls"
            " WHERE day = %s AND operation_id = ANY(%s)",
            (day, list(operation_ids)),
        )
        return {operation_id: int(used) for operation_id, used in rows}

    async def period_figures(
        self, operation_ids: Sequence[int], first: date, last: date
    ) -> PeriodFigures:
        ids = list(operation_ids)
        sums = await self._all(
            "SELECT operation_id, meter, sum(total) FROM rollups"
            " WHERE operation_id = ANY(%s) AND day BETWEEN %s AND %s"
            " GROUP BY operation_id, meter",
            (ids, first, last),
        )
        gauges = await self._all(
            "SELECT DISTINCT ON (operation_id, meter) operation_id, meter, gauge_value"
            " FROM rollups WHERE operation_id = ANY(%s) AND day <= %s AND gauge_at IS NOT NULL"
            " ORDER BY operation_id, meter, day DESC",
            (ids, last),
        )
        return PeriodFigures(
            sums={(op, meter): int(total) for op, meter, total in sums},
            gauges={(op, meter): int(value) for op, meter, value in gauges},
        )

    async def totals_by_attribute(
        self, operation_ids: Sequence[int], meter: str, first: date, last: date, attribute: str
    ) -> list[tuple[int, str | None, int]]:
        rows = await self._all(
            "SELECT v.operation_id, e.attributes::jsonb ->> %s, sum(v.effective_quantity)"
            " FROM effective_events v JOIN events e ON e.day = v.day AND e.seq = v.seq"
            " WHERE v.operation_id = ANY(%s) AND v.meter = %s AND v.day BETWEEN %s AND %s"
            " AND v.effective_quantity IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 3 DESC",
            (attribute, list(operation_ids), meter, first, last),
        )
        return [(op, value, int(total)) for op, value, total in rows]

    async def search_events(self, query: EventQuery) -> list[EventRow]:
        where, params = ["v.operation_id = %s"], [query.operation_id]
        for clause, value in (
            ("v.meter = %s", query.meter),
            ("v.occurred_at >= %s", query.since),
            ("v.occurred_at < %s", query.until),
            ("v.event_id = %s", query.event_id),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)  # type: ignore[arg-type]
        rows = await self._all(
            "SELECT v.event_id, v.meter, v.quantity, v.effective_quantity, v.last_action,"
            " v.occurred_at, v.received_at, e.attributes"
            " FROM effective_events v JOIN events e ON e.day = v.day AND e.seq = v.seq"
            f" WHERE {' AND '.join(where)} ORDER BY v.seq DESC LIMIT %s",
            (*params, query.limit),
        )
        return [
            EventRow(
                event_id, meter, quantity, effective, STATES[action],
                occurred, received, attributes,
            )
            for event_id, meter, quantity, effective, action, occurred, received, attributes in rows
        ]  # fmt: skip
