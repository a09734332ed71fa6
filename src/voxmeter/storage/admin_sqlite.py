"""The console's storage port on SQLite: its own connection to the store's file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from voxmeter.domain.admins import AuditEntry, Identity, IdentityKind, Role
from voxmeter.domain.clock import EPOCH, utc_micros
from voxmeter.storage.admin import (
    STATES,
    AdminStore,
    EventQuery,
    EventRow,
    IdentityExists,
    PeriodFigures,
)
from voxmeter.storage.sqlite import sqlite_path

_COLUMNS = ("id", "name", "role", "kind", "key_id", "created_at", "disabled_at")
_IDENTITY = ", ".join(f"i.{column}" for column in _COLUMNS)


def _moment(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _identity(row: Sequence[Any]) -> Identity:
    return Identity(
        id=row[0],
        name=row[1],
        role=Role(row[2]),
        kind=IdentityKind(row[3]),
        key_id=row[4],
        created_at=_moment(row[5]),
        disabled_at=None if row[6] is None else _moment(row[6]),
    )


class SQLiteAdminStore(AdminStore):
    def __init__(self, url: str) -> None:
        self._db = sqlite3.connect(sqlite_path(url), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA foreign_keys=ON")

    async def close(self) -> None:
        self._db.close()

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
            cursor = self._db.execute(
                "INSERT INTO admin_identities (name, role, kind, key_id, secret_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, role.value, kind.value, key_id, secret_hash, utc_micros(now)),
            )
        except sqlite3.IntegrityError:
            raise IdentityExists(name) from None
        assert cursor.lastrowid is not None
        return Identity(cursor.lastrowid, name, role, kind, key_id, now)

    async def user(self, name: str) -> tuple[Identity, bytes] | None:
        row = self._db.execute(
            f"SELECT {_IDENTITY}, i.secret_hash FROM admin_identities i"
            " WHERE i.name = ? AND i.kind = 'user' AND i.disabled_at IS NULL",
            (name,),
        ).fetchone()
        return None if row is None else (_identity(row), bytes(row[7]))

    async def key(self, key_id: str) -> tuple[Identity, bytes] | None:
        row = self._db.execute(
            f"SELECT {_IDENTITY}, i.secret_hash FROM admin_identities i"
            " WHERE i.key_id = ? AND i.disabled_at IS NULL",
            (key_id,),
        ).fetchone()
        return None if row is None else (_identity(row), bytes(row[7]))

    async def identities(self) -> list[Identity]:
        rows = self._db.execute(f"SELECT {_IDENTITY} FROM admin_identities i ORDER BY i.id")
        return [_identity(row) for row in rows]

    async def disable_identity(self, name: str, now: datetime) -> Identity | None:
        with self._db:  # one transaction: no session outlives the identity's disabling
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "UPDATE admin_identities SET disabled_at = ?"
                f" WHERE name = ? AND disabled_at IS NULL RETURNING {', '.join(_COLUMNS)}",
                (utc_micros(now), name),
            ).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM admin_sessions WHERE identity_id = ?", (row[0],))
        return None if row is None else _identity(row)

    async def create_session(
        self, session_hash: bytes, identity_id: int, csrf: str, now: datetime, expires: datetime
    ) -> None:
        self._db.execute(
            "INSERT INTO admin_sessions (session_hash, identity_id, csrf, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (session_hash, identity_id, csrf, utc_micros(now), utc_micros(expires)),
        )

    async def session(self, session_hash: bytes, now: datetime) -> tuple[Identity, str] | None:
        row = self._db.execute(
            f"SELECT {_IDENTITY}, s.csrf FROM admin_sessions s"
            " JOIN admin_identities i ON i.id = s.identity_id"
            " WHERE s.session_hash = ? AND s.expires_at > ? AND i.disabled_at IS NULL",
            (session_hash, utc_micros(now)),
        ).fetchone()
        return None if row is None else (_identity(row), str(row[7]))

    async def end_session(self, session_hash: bytes) -> None:
        self._db.execute("DELETE FROM admin_sessions WHERE session_hash = ?", (session_hash,))

    async def end_expired_sessions(self, now: datetime) -> int:
        cursor = self._db.execute(
            "DELETE FROM admin_sessions WHERE expires_at <= ?", (utc_micros(now),)
        )
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
        self._db.execute(
            "INSERT INTO admin_audit (at, actor, action, target, before, after)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (utc_micros(at), actor, action, target, before, after),
        )

    async def audit_log(self, limit: int) -> list[AuditEntry]:
        rows = self._db.execute(
            "SELECT seq, at, actor, action, target, before, after FROM admin_audit"
            " ORDER BY seq DESC LIMIT ?",
            (limit,),
        )
        return [AuditEntry(seq, _moment(at), *rest) for seq, at, *rest in rows]

    async def archive_operation(self, operation_id: int, now: datetime) -> bool:
        cursor = self._db.execute(
            "INSERT INTO archived_operations (operation_id, archived_at) VALUES (?, ?)"
            " ON CONFLICT DO NOTHING",
            (operation_id, utc_micros(now)),
        )
        return cursor.rowcount == 1

    async def archived_operations(self) -> set[int]:
        return {row[0] for row in self._db.execute("SELECT operation_id FROM archived_operations")}

    async def calls_on(self, operation_id: int, day: date) -> int:
        row = self._db.execute(
            "SELECT used FROM operation_calls WHERE operation_id = ? AND day = ?",
            (operation_id, day.isoformat()),
        ).fetchone()
        return 0 if row is None else int(row[0])

    async def calls_on_day(self, operation_ids: Sequence[int], day: date) -> dict[int, int]:
        rows = self._db.execute(
            "SELECT operation_id, used FROM operation_calls"
            " WHERE day = ? AND operation_id IN (SELECT value FROM json_each(?))",
            (day.isoformat(), json.dumps(list(operation_ids))),
        )
        return {operation_id: int(used) for operation_id, used in rows}

    async def period_figures(
        self, operation_ids: Sequence[int], first: date, last: date
    ) -> PeriodFigures:
        ids = json.dumps(list(operation_ids))
        sums = self._db.execute(
            "SELECT operation_id, meter, sum(total) FROM rollups"
            " WHERE operation_id IN (SELECT value FROM json_each(?)) AND day BETWEEN ? AND ?"
            " GROUP BY operation_id, meter",
            (ids, first.isoformat(), last.isoformat()),
        )
        # With max(), SQLite takes the bare column from the row holding the maximum.
        gauges = self._db.execute(
            "SELECT operation_id, meter, gauge_value, max(day) FROM rollups"
            " WHERE operation_id IN (SELECT value FROM json_each(?)) AND day <= ?"
            " AND gauge_at IS NOT NULL GROUP BY operation_id, meter",
            (ids, last.isoformat()),
        )
        return PeriodFigures(
            sums={(op, meter): int(total) for op, meter, total in sums},
            gauges={(op, meter): int(value) for op, meter, value, _ in gauges},
        )

    async def totals_by_attribute(
        self, operation_ids: Sequence[int], meter: str, first: date, last: date, attribute: str
    ) -> list[tuple[int, str | None, int]]:
        marks = ", ".join("?" * len(operation_ids))
        rows = self._db.execute(
            "SELECT v.operation_id, CAST(json_extract(e.attributes, '$.' || ?) AS TEXT),"
            " sum(v.effective_quantity)"
            " FROM effective_events v JOIN events e ON e.seq = v.seq"
            f" WHERE v.operation_id IN ({marks}) AND v.meter = ? AND v.day BETWEEN ? AND ?"
            " AND v.effective_quantity IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 3 DESC",
            (json_key(attribute), *operation_ids, meter, first.isoformat(), last.isoformat()),
        )
        return [(op, value, int(total)) for op, value, total in rows]

    async def search_events(self, query: EventQuery) -> list[EventRow]:
        where, params = ["v.operation_id = ?"], [query.operation_id]
        for clause, value in (
            ("v.meter = ?", query.meter),
            ("v.occurred_at >= ?", None if query.since is None else utc_micros(query.since)),
            ("v.occurred_at < ?", None if query.until is None else utc_micros(query.until)),
            ("v.event_id = ?", query.event_id),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)  # type: ignore[arg-type]
        rows = self._db.execute(
            "SELECT v.event_id, v.meter, v.quantity, v.effective_quantity, v.last_action,"
            " v.occurred_at, v.received_at, e.attributes"
            " FROM effective_events v JOIN events e ON e.seq = v.seq"
            f" WHERE {' AND '.join(where)} ORDER BY v.seq DESC LIMIT ?",
            (*params, query.limit),
        )
        return [
            EventRow(
                event_id, meter, quantity, effective, STATES[action],
                _moment(occurred), _moment(received), attributes,
            )
            for event_id, meter, quantity, effective, action, occurred, received, attributes in rows
        ]  # fmt: skip


def json_key(attribute: str) -> str:
    """The attribute as one quoted JSON path member (so dots or quotes stay literal)."""
    return '"' + attribute.replace("\\", "\\\\").replace('"', '\\"') + '"'
