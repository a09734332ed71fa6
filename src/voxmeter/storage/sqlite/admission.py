"""Admission in SQLite: counters in the database, slots as kernel locks beside it.

A batch of asks is decided in one write transaction by
:func:`voxmeter.domain.admission.decide`, each counter read once and
written once. A slot is a byte-range lock (:mod:`voxmeter.storage.slotlocks`),
freed at once should the worker die: it needs no lease.
"""

from __future__ import annotations

from datetime import date
from functools import partial

from voxmeter.domain.admission import Admission, Usage, decide
from voxmeter.domain.clock import utc_micros
from voxmeter.storage.admitting import BatchedAdmission
from voxmeter.storage.figures import FigureCache
from voxmeter.storage.ports import AdmissionRequest
from voxmeter.storage.slotlocks import SlotLocks
from voxmeter.storage.sqlite.connection import SQLitePart


class SQLiteAdmission(SQLitePart, BatchedAdmission):
    # Statements run in the event loop's thread, start to end.
    calls_wait = False
    _slots: SlotLocks
    figures: FigureCache
    # The ledger's version for the figure cache: counts the admission
    # batches that found SQLite's data_version changed (it changes when
    # another connection commits). Own ledger writes clear the cache.
    _data_version = -1
    _ledger_version = 0

    def _calls(self, token_id: str, operation_id: int, day: str) -> Usage:
        token_used, operation_used = self._db.execute(
            "SELECT (SELECT used FROM token_calls WHERE token_id = ? AND day = ?),"
            " (SELECT used FROM operation_calls WHERE operation_id = ? AND day = ?)",
            (token_id, day, operation_id, day),
        ).fetchone()
        return Usage(token_used=token_used or 0, operation_used=operation_used or 0)

    async def _give_back(self, ask: AdmissionRequest, admission: Admission) -> None:
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
                    day = ask.quota.day.isoformat()
                    token_key, operation_key = (token.id, day), (operation.id, day)
                    if token_key not in token_used or operation_key not in operation_used:
                        stored = self._calls(token.id, operation.id, day)
                        token_used.setdefault(token_key, stored.token_used)
                        operation_used.setdefault(operation_key, stored.operation_used)
                    admission = decide(
                        current[checked],
                        Usage(token_used[token_key], operation_used[operation_key]),
                        ask.quota,
                        partial(self._slots.acquire, token.id, ask.concurrency),
                    )
                    admissions.append(admission)
                    if admission.slot is not None:
                        held.append((token.id, admission.slot))
                        token_used[token_key] = admission.usage.token_used
                        operation_used[operation_key] = admission.usage.operation_used
                        counted_operations.add(operation_key)
                        last_at[token_key] = utc_micros(ask.now)
                (data_version,) = db.execute("PRAGMA data_version").fetchone()
                if data_version != self._data_version:
                    self._data_version = data_version
                    self._ledger_version += 1
                for ask in asks:
                    self.figures.seen(ask.principal.operation.id, self._ledger_version)
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

    async def release(self, token_id: str, slot: int, lease: int | None) -> None:
        self._slots.release(token_id, slot)

    async def calls_today(self, token_id: str, operation_id: int, day: date) -> Usage:
        return self._calls(token_id, operation_id, day.isoformat())
