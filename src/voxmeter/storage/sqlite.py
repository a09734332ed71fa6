"""The embedded default store: one SQLite file in WAL mode.

Statements run synchronously on the event loop's thread: they are short
primary-key reads and writes, and on this workload that beats a thread pool
or aiosqlite by several times (see ``shared/perf-baseline.md``). Several
worker processes may share the file; SQLite serialises their writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta

from voxmeter.contract.meters import GAUGE_METERS
from voxmeter.domain.admission import Admission, Quota, Usage, Verdict
from voxmeter.domain.clock import EPOCH
from voxmeter.domain.clock import utc_micros as to_micros
from voxmeter.domain.ledger import (
    DayFigures,
    EventState,
    classify,
    fold,
    last_gauge_values,
    plan_corrections,
)
from voxmeter.domain.models import (
    Correction,
    CorrectionResult,
    Credential,
    LedgerEntry,
    LedgerEvent,
    NewOperation,
    Operation,
    OperationChanges,
    Principal,
    RecordOutcome,
    Rejection,
    RejectionRecord,
    Token,
    TokenScope,
)
from voxmeter.storage.base import AdmissionRequest, OperationExists, Store, UnknownOperation
from voxmeter.storage.batching import TurnBatcher
from voxmeter.storage.figures import FigureCache
from voxmeter.storage.slotlocks import slot_locks

# SQLite allows at most 32766 host parameters per statement.
_IN_CHUNK = 900


def from_micros(micros: int | None) -> datetime | None:
    return None if micros is None else EPOCH + timedelta(microseconds=micros)


def _moment(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def sqlite_path(url: str) -> str:
    """The file path in ``sqlite:///relative.db`` or ``sqlite:////absolute.db``."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite URL: {url!r}")
    return url[len("sqlite:///") :]


_OPERATION_COLUMNS = (
    "o.id, o.name, o.server_id, o.timezone, o.licenses, o.pbx, o.created_at,"
    " (SELECT group_concat(s.service) FROM operation_services s WHERE s.operation_id = o.id),"
    " o.revision"
)
_TOKEN_COLUMNS = (
    "t.id, t.operation_id, t.scope, t.description, t.created_at,"
    " (SELECT max(c.last_at) FROM token_calls c WHERE c.token_id = t.id), t.revoked_at"
)


class SQLiteStore(Store):
    # Statements run in the event loop's thread, start to end.
    calls_wait = False

    def __init__(self, url: str) -> None:
        self.url = url
        self._db = sqlite3.connect(sqlite_path(url), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is safe against process crashes; ledger commits switch to
        # FULL so an acknowledged batch also survives a power loss.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._slots = slot_locks(sqlite_path(url) + "-slots")
        self._admissions = TurnBatcher(self._admit_all, self._give_back)
        # The ledger's version for the figure cache: counts the admission
        # batches that found SQLite's data_version changed (it changes when
        # another connection commits). Own ledger writes clear the cache.
        self._figures = FigureCache()
        self._data_version = -1
        self._ledger_version = 0

    async def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding SQLite's write lock from its start.

        ``durable`` ones are the ledger's: they also survive a power loss,
        and they make the cached figures stale.
        """
        if durable:
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            if durable:
                self._figures.clear()
                self._db.execute("PRAGMA synchronous=NORMAL")

    async def schema_revision(self) -> str | None:
        row = self._db.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])

    async def ledger_size(self) -> int:
        (size,) = self._db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        return int(size)

    # -- operations ------------------------------------------------------

    @staticmethod
    def _operation(row: tuple[int, str, str, str, int, int, int, str | None, int]) -> Operation:
        created = from_micros(row[6])
        assert created is not None
        return Operation(
            id=row[0],
            name=row[1],
            server_id=row[2],
            timezone=row[3],
            licenses=row[4],
            pbx=row[5],
            services=frozenset(row[7].split(",")) if row[7] else frozenset(),
            created_at=created,
            revision=row[8],
        )

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
                    (
                        new.name,
                        new.server_id,
                        new.timezone,
                        new.licenses,
                        new.pbx,
                        to_micros(now),
                    ),
                ).fetchone()
                self._set_services(operation_id, new.services)
        except sqlite3.IntegrityError as exc:
            raise OperationExists(new.name) from exc
        operation = await self.get_operation(new.name)
        assert operation is not None
        return operation

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
        operation = await self.get_operation(name)
        assert operation is not None
        return operation

    async def get_operation(self, name: str) -> Operation | None:
        row = self._db.execute(
            f"SELECT {_OPERATION_COLUMNS} FROM operations o WHERE o.name = ?", (name,)
        ).fetchone()
        return None if row is None else self._operation(row)

    async def list_operations(self) -> list[Operation]:
        rows = self._db.execute(
            f"SELECT {_OPERATION_COLUMNS} FROM operations o ORDER BY o.name"
        ).fetchall()
        return [self._operation(row) for row in rows]

    # -- tokens ----------------------------------------------------------

    @staticmethod
    def _token(row: tuple[str, int, str, str, int, int | None, int | None]) -> Token:
        created = from_micros(row[4])
        assert created is not None
        return Token(
            id=row[0],
            operation_id=row[1],
            scope=TokenScope(row[2]),
            description=row[3],
            created_at=created,
            last_used_at=from_micros(row[5]),
            revoked_at=from_micros(row[6]),
        )

    async def create_token(
        self,
        token_id: str,
        operation_id: int,
        secret_hash: bytes,
        scope: TokenScope,
        description: str,
        now: datetime,
    ) -> Token:
        with self._write() as db:
            db.execute(
                "INSERT INTO tokens (id, operation_id, secret_hash, scope, description, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (token_id, operation_id, secret_hash, scope.value, description, to_micros(now)),
            )
        token = await self.get_token(token_id)
        assert token is not None
        return token

    async def find_credential(self, token_id: str) -> Credential | None:
        row = self._db.execute(
            f"SELECT {_TOKEN_COLUMNS}, {_OPERATION_COLUMNS}, t.secret_hash FROM tokens t"
            " JOIN operations o ON o.id = t.operation_id"
            " WHERE t.id = ? AND t.revoked_at IS NULL",
            (token_id,),
        ).fetchone()
        if row is None:
            return None
        principal = Principal(token=self._token(row[:7]), operation=self._operation(row[7:16]))
        return Credential(principal=principal, secret_hash=row[16])

    async def list_tokens(self, operation_id: int) -> list[Token]:
        rows = self._db.execute(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens t WHERE t.operation_id = ?"
            " ORDER BY t.created_at, t.id",
            (operation_id,),
        ).fetchall()
        return [self._token(row) for row in rows]

    async def get_token(self, token_id: str) -> Token | None:
        row = self._db.execute(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens t WHERE t.id = ?", (token_id,)
        ).fetchone()
        return None if row is None else self._token(row)

    async def revoke_token(self, token_id: str, now: datetime) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (to_micros(now), token_id),
            )
            return cursor.rowcount == 1

    # -- limits ------------------------------------------------------------

    def _calls(self, token_id: str, operation_id: int, day: str) -> Usage:
        token_used, operation_used = self._db.execute(
            "SELECT (SELECT used FROM token_calls WHERE token_id = ? AND day = ?),"
            " (SELECT used FROM operation_calls WHERE operation_id = ? AND day = ?)",
            (token_id, day, operation_id, day),
        ).fetchone()
        return Usage(token_used=token_used or 0, operation_used=operation_used or 0)

    async def admit(
        self,
        principal: Principal,
        quota: Quota,
        concurrency: int,
        lease_until: datetime,
        now: datetime,
    ) -> Admission:
        # Calls that ask in the same event-loop turn are admitted together in
        # one write transaction: under load most of a call's cost was its own
        # commit. The lease is not needed: a slot is a kernel lock.
        return await self._admissions.submit(
            AdmissionRequest(principal, quota, concurrency, lease_until, now)
        )

    async def _give_back(self, ask: AdmissionRequest, admission: Admission) -> None:
        """The slot of a call admitted but gone (cancelled) before it could run."""
        if admission.slot is not None:
            self._slots.release(ask.principal.token.id, admission.slot)

    async def _admit_all(self, asks: list[AdmissionRequest]) -> list[Admission]:
        """Each ask in order, in one transaction: every counter is read once, written once."""
        current: dict[tuple[str, int], bool] = {}  # by token and operation revision
        token_used: dict[tuple[str, str], int] = {}
        operation_used: dict[tuple[int, str], int] = {}
        last_at: dict[tuple[str, str], int] = {}  # the tokens with calls counted
        counted_operations: set[tuple[int, str]] = set()
        held: list[tuple[str, int]] = []
        admissions = []
        try:
            with self._write() as db:
                for ask in asks:
                    token, operation = ask.principal.token, ask.principal.operation
                    checked = (token.id, operation.revision)
                    if checked not in current:
                        current[checked] = self._credential_current(
                            token.id, operation.id, operation.revision
                        )
                    if not current[checked]:
                        admissions.append(Admission(Verdict.CREDENTIAL_CHANGED, Usage(0, 0)))
                        continue
                    day = ask.quota.day.isoformat()
                    token_key, operation_key = (token.id, day), (operation.id, day)
                    if token_key not in token_used or operation_key not in operation_used:
                        stored = self._calls(token.id, operation.id, day)
                        token_used.setdefault(token_key, stored.token_used)
                        operation_used.setdefault(operation_key, stored.operation_used)
                    usage = Usage(token_used[token_key], operation_used[operation_key])
                    if (
                        usage.token_used >= ask.quota.token_limit
                        or usage.operation_used >= ask.quota.operation_limit
                    ):
                        admissions.append(Admission(Verdict.QUOTA_EXCEEDED, usage))
                        continue
                    slot = self._slots.acquire(token.id, ask.concurrency)
                    if slot is None:
                        admissions.append(Admission(Verdict.TOO_MANY_IN_FLIGHT, usage))
                        continue
                    held.append((token.id, slot))
                    token_used[token_key] += 1
                    operation_used[operation_key] += 1
                    counted_operations.add(operation_key)
                    last_at[token_key] = to_micros(ask.now)
                    grown = Usage(usage.token_used + 1, usage.operation_used + 1)
                    admissions.append(Admission(Verdict.ADMITTED, grown, slot=slot, lease=0))
                (data_version,) = db.execute("PRAGMA data_version").fetchone()
                if data_version != self._data_version:
                    self._data_version = data_version
                    self._ledger_version += 1
                for ask in asks:
                    self._figures.seen(ask.principal.operation.id, self._ledger_version)
                # The write lock was held since the reads: absolute values are exact.
                db.executemany(
                    "INSERT INTO token_calls (token_id, day, used, last_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (token_id, day) DO UPDATE SET used = excluded.used,"
                    " last_at = max(last_at, excluded.last_at)",
                    [(*key, token_used[key], at) for key, at in last_at.items()],
                )
                db.executemany(
                    "INSERT INTO operation_calls (operation_id, day, used) VALUES (?, ?, ?)"
                    " ON CONFLICT (operation_id, day) DO UPDATE SET used = excluded.used",
                    [(*key, operation_used[key]) for key in counted_operations],
                )
        except BaseException:
            for token_id, slot in held:
                self._slots.release(token_id, slot)
            raise
        return admissions

    def _credential_current(self, token_id: str, operation_id: int, revision: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM tokens t JOIN operations o ON o.id = t.operation_id"
            " WHERE t.id = ? AND t.revoked_at IS NULL AND o.id = ? AND o.revision = ?",
            (token_id, operation_id, revision),
        ).fetchone()
        return row is not None

    async def release(self, token_id: str, slot: int, lease: int) -> None:
        self._slots.release(token_id, slot)

    async def calls_today(self, token_id: str, operation_id: int, day: date) -> Usage:
        return self._calls(token_id, operation_id, day.isoformat())

    # -- usage -------------------------------------------------------------

    def _stored_fingerprints(self, operation_id: int, event_ids: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for start in range(0, len(event_ids), _IN_CHUNK):
            chunk = event_ids[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                self._db.execute(
                    "SELECT event_id, fingerprint FROM events"
                    f" WHERE operation_id = ? AND event_id IN ({marks})",
                    (operation_id, *chunk),
                ).fetchall()
            )
        return found

    async def record_events(
        self, operation_id: int, events: Sequence[LedgerEvent], now: datetime
    ) -> RecordOutcome:
        with self._write(durable=True) as db:
            stored = self._stored_fingerprints(operation_id, [e.event_id for e in events])
            outcome, fresh = classify(events, stored)
            if outcome.conflicts:
                return outcome  # nothing written: the empty transaction commits
            received = to_micros(now)
            db.executemany(
                "INSERT INTO events (operation_id, event_id, meter, quantity, occurred_at, day,"
                " attributes, fingerprint, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        operation_id,
                        e.event_id,
                        e.meter,
                        e.quantity,
                        to_micros(e.occurred_at),
                        e.day.isoformat(),
                        e.attributes,
                        e.fingerprint,
                        received,
                    )
                    for e in fresh
                ],
            )
            db.executemany(
                "INSERT INTO rollups (operation_id, meter, day, total, gauge_value, gauge_at)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (operation_id, meter, day) DO UPDATE SET"
                " total = total + excluded.total,"
                " gauge_value = CASE WHEN excluded.gauge_at IS NOT NULL AND"
                "   (gauge_at IS NULL OR excluded.gauge_at >= gauge_at)"
                "   THEN excluded.gauge_value ELSE gauge_value END,"
                " gauge_at = max(coalesce(gauge_at, excluded.gauge_at),"
                "   coalesce(excluded.gauge_at, gauge_at))",
                [
                    (
                        operation_id,
                        meter,
                        day.isoformat(),
                        change.total,
                        change.gauge_value,
                        None if change.gauge_at is None else to_micros(change.gauge_at),
                    )
                    for (meter, day), change in fold(fresh, GAUGE_METERS).items()
                ],
            )
        return outcome

    async def event_meters(self, operation_id: int, event_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(event_ids))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                self._db.execute(
                    "SELECT event_id, meter FROM events"
                    f" WHERE operation_id = ? AND event_id IN ({marks})",
                    (operation_id, *chunk),
                ).fetchall()
            )
        return found

    async def correct_events(
        self, operation_id: int, corrections: Sequence[Correction], now: datetime
    ) -> list[CorrectionResult]:
        with self._write(durable=True) as db:
            states: dict[str, EventState[str]] = {}
            for correction in corrections:
                row = db.execute(
                    "SELECT meter, day, effective_quantity FROM effective_events"
                    " WHERE operation_id = ? AND event_id = ?",
                    (operation_id, correction.event_id),
                ).fetchone()
                if row is not None:
                    states[correction.event_id] = row
            plan = plan_corrections(corrections, states)
            if plan.unknown:
                return plan.results
            db.executemany(
                "INSERT INTO corrections (operation_id, event_id, action, quantity, reason,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (operation_id, c.event_id, c.action.value, quantity, c.reason, to_micros(now))
                    for c, quantity in plan.appended
                ],
            )
            db.executemany(
                "UPDATE rollups SET total = total + ?"
                " WHERE operation_id = ? AND meter = ? AND day = ?",
                [
                    (delta, operation_id, meter, day)
                    for (meter, day), delta in plan.counter_deltas.items()
                ],
            )
            for meter, day in plan.gauge_days:
                latest = db.execute(
                    "SELECT effective_quantity, occurred_at FROM effective_events"
                    " WHERE operation_id = ? AND meter = ? AND day = ?"
                    " AND effective_quantity IS NOT NULL ORDER BY occurred_at DESC, seq DESC",
                    (operation_id, meter, day),
                ).fetchone()
                db.execute(
                    "UPDATE rollups SET gauge_value = ?, gauge_at = ?"
                    " WHERE operation_id = ? AND meter = ? AND day = ?",
                    (*(latest or (None, None)), operation_id, meter, day),
                )
        return plan.results

    async def log_rejections(
        self, operation_id: int, rejections: Sequence[Rejection], now: datetime
    ) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT INTO rejections (operation_id, received_at, event_index, event_id, reason)"
                " VALUES (?, ?, ?, ?, ?)",
                [(operation_id, to_micros(now), r.index, r.event_id, r.reason) for r in rejections],
            )

    async def recent_events(
        self,
        operation_id: int,
        limit: int,
        *,
        meter: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        event_id: str | None = None,
    ) -> list[LedgerEntry]:
        rows = self._db.execute(
            "SELECT event_id, meter, quantity, effective_quantity, last_action, occurred_at,"
            " received_at FROM effective_events WHERE operation_id = ?"
            " AND (? IS NULL OR meter = ?) AND (? IS NULL OR occurred_at >= ?)"
            " AND (? IS NULL OR occurred_at < ?) AND (? IS NULL OR event_id = ?)"
            " ORDER BY seq DESC LIMIT ?",
            (
                operation_id,
                *(meter, meter),
                *((None, None) if since is None else (to_micros(since),) * 2),
                *((None, None) if until is None else (to_micros(until),) * 2),
                *(event_id, event_id),
                limit,
            ),
        ).fetchall()
        return [
            LedgerEntry(
                event_id=event_id,
                meter=meter,
                quantity=quantity,
                effective_quantity=effective,
                state={None: "counted", "amend": "amended", "void": "voided"}[action],
                occurred_at=_moment(occurred),
                received_at=_moment(received),
            )
            for event_id, meter, quantity, effective, action, occurred, received in rows
        ]

    async def recent_rejections(self, operation_id: int, limit: int) -> list[RejectionRecord]:
        rows = self._db.execute(
            "SELECT received_at, event_index, event_id, reason FROM rejections"
            " WHERE operation_id = ? ORDER BY seq DESC LIMIT ?",
            (operation_id, limit),
        ).fetchall()
        return [
            RejectionRecord(
                received_at=_moment(received), index=index, event_id=event_id, reason=reason
            )
            for received, index, event_id, reason in rows
        ]

    async def ledger_by_day(self, operation_id: int) -> dict[tuple[str, date], DayFigures]:
        figures: dict[tuple[str, date], DayFigures] = {}
        for meter, day, total in self._db.execute(
            "SELECT meter, day, sum(effective_quantity) FROM effective_events"
            " WHERE operation_id = ? AND effective_quantity IS NOT NULL GROUP BY meter, day",
            (operation_id,),
        ):
            if meter not in GAUGE_METERS:
                figures[(meter, date.fromisoformat(day))] = (total, None)
        gauges = last_gauge_values(
            (meter, date.fromisoformat(day), value)
            for meter, day, value in self._db.execute(
                "SELECT meter, day, effective_quantity FROM effective_events"
                " WHERE operation_id = ? AND effective_quantity IS NOT NULL"
                f" AND meter IN ({','.join('?' * len(GAUGE_METERS))})"
                " ORDER BY meter, day, occurred_at, seq",
                (operation_id, *sorted(GAUGE_METERS)),
            )
        )
        for key, value in gauges.items():
            figures[key] = (0, value)
        return figures

    async def rollups_by_day(self, operation_id: int) -> dict[tuple[str, date], DayFigures]:
        rows = self._db.execute(
            "SELECT meter, day, total, gauge_value FROM rollups WHERE operation_id = ?",
            (operation_id,),
        )
        return {
            (meter, date.fromisoformat(day)): (total, gauge) for meter, day, total, gauge in rows
        }

    async def summed_total(
        self, operation_id: int, meter: str, first_day: date, last_day: date
    ) -> int:
        async def read() -> int:
            (total,) = self._db.execute(
                "SELECT coalesce(sum(total), 0) FROM rollups"
                " WHERE operation_id = ? AND meter = ? AND day BETWEEN ? AND ?",
                (operation_id, meter, first_day.isoformat(), last_day.isoformat()),
            ).fetchone()
            return int(total)

        key = ("sum", operation_id, meter, first_day, last_day)
        return await self._figures.read_through(key, read) or 0

    async def daily_rollups(
        self, operation_id: int, meter: str, first_day: date, last_day: date
    ) -> dict[date, tuple[int, int | None]]:
        rows = self._db.execute(
            "SELECT day, total, gauge_value FROM rollups"
            " WHERE operation_id = ? AND meter = ? AND day BETWEEN ? AND ?",
            (operation_id, meter, first_day.isoformat(), last_day.isoformat()),
        )
        return {date.fromisoformat(day): (total, gauge) for day, total, gauge in rows}

    async def gauge_value(self, operation_id: int, meter: str, day: date) -> int | None:
        async def read() -> int | None:
            row = self._db.execute(
                "SELECT gauge_value FROM rollups WHERE operation_id = ? AND meter = ?"
                " AND day <= ? AND gauge_at IS NOT NULL ORDER BY day DESC LIMIT 1",
                (operation_id, meter, day.isoformat()),
            ).fetchone()
            return None if row is None else int(row[0])

        return await self._figures.read_through(("gauge", operation_id, meter, day, day), read)
