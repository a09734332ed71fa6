"""The usage ledger in SQLite: events, corrections, rejections, rollups kept in step."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

from voxmeter.contract.meters import GAUGE_METERS
from voxmeter.domain.clock import EPOCH, utc_micros
from voxmeter.domain.ledger import (
    DayFigures,
    EventState,
    classify,
    fold,
    plan_corrections,
)
from voxmeter.domain.models import (
    Correction,
    CorrectionResult,
    LedgerEntry,
    LedgerEvent,
    RecordOutcome,
    Rejection,
    RejectionRecord,
)
from voxmeter.storage.figures import FigureCache
from voxmeter.storage.ports import LedgerStore
from voxmeter.storage.rows import LEDGER_ENTRY_COLUMNS, REJECTION_COLUMNS, ledger_figures
from voxmeter.storage.sqlite.alerts import guard
from voxmeter.storage.sqlite.connection import IN_CHUNK, SPELLING, SQLitePart


class SQLiteLedger(SQLitePart, LedgerStore):
    figures: FigureCache

    @contextmanager
    def _ledger_write(self) -> Iterator[sqlite3.Connection]:
        """A durable write transaction that makes the figures this worker keeps stale."""
        try:
            with self._write(durable=True) as db:
                yield db
        finally:
            self.figures.clear()

    def _by_event_id(
        self, columns: str, operation_id: int, event_ids: Sequence[str]
    ) -> dict[str, Any]:
        """``columns`` of each of these events that is in the ledger, by event id."""
        found: dict[str, Any] = {}
        for start in range(0, len(event_ids), IN_CHUNK):
            chunk = event_ids[start : start + IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                self._db.execute(
                    f"SELECT event_id, {columns} FROM events"
                    f" WHERE operation_id = ? AND event_id IN ({marks})",
                    (operation_id, *chunk),
                ).fetchall()
            )
        return found

    async def record_events(
        self, operation_id: int, events: Sequence[LedgerEvent], now: datetime
    ) -> RecordOutcome:
        with self._ledger_write() as db:
            stored = self._by_event_id("fingerprint", operation_id, [e.event_id for e in events])
            outcome, fresh = classify(events, stored)
            if outcome.conflicts:
                return outcome  # nothing written: the empty transaction commits
            changes = fold(fresh, GAUGE_METERS)
            summed = {key: c.total for key, c in changes.items() if key[0] not in GAUGE_METERS}
            guard(db, operation_id, summed, now, capped=True)
            received = utc_micros(now)
            db.executemany(
                "INSERT INTO events (operation_id, event_id, meter, quantity, occurred_at, day,"
                " attributes, fingerprint, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        operation_id,
                        e.event_id,
                        e.meter,
                        e.quantity,
                        utc_micros(e.occurred_at),
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
                        None if change.gauge_at is None else utc_micros(change.gauge_at),
                    )
                    for (meter, day), change in changes.items()
                ],
            )
        return outcome

    async def event_meters(self, operation_id: int, event_ids: Sequence[str]) -> dict[str, str]:
        return self._by_event_id("meter", operation_id, list(dict.fromkeys(event_ids)))

    async def correct_events(
        self, operation_id: int, corrections: Sequence[Correction], now: datetime
    ) -> list[CorrectionResult]:
        with self._ledger_write() as db:
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
                    (operation_id, c.event_id, c.action.value, quantity, c.reason, utc_micros(now))
                    for c, quantity in plan.appended
                ],
            )
            guard(
                db,
                operation_id,
                {
                    (meter, date.fromisoformat(day)): d
                    for (meter, day), d in plan.counter_deltas.items()
                },
                now,
                capped=False,
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
        self,
        operation_id: int,
        rejections: Sequence[Rejection],
        now: datetime,
        *,
        keep_per_operation: int,
        keep: int,
    ) -> None:
        received = utc_micros(now)
        with self._write() as db:
            db.executemany(
                "INSERT INTO rejections (operation_id, received_at, event_index, event_id, reason)"
                " VALUES (?, ?, ?, ?, ?)",
                [(operation_id, received, r.index, r.event_id, r.reason) for r in rejections],
            )
            oldest_kept = db.execute(
                "SELECT seq FROM rejections WHERE operation_id = ?"
                " ORDER BY seq DESC LIMIT 1 OFFSET ?",
                (operation_id, keep_per_operation - 1),
            ).fetchone()
            if oldest_kept:
                _drop_rejections(db, oldest_kept[0], operation_id)
            # seq only grows, so the latest ``keep`` rows all lie above this
            # (gaps left by rolled-back inserts only make it keep fewer).
            (newest,) = db.execute("SELECT max(seq) FROM rejections").fetchone()
            _drop_rejections(db, newest - keep + 1, None)

    async def keep_refused_payloads(
        self, operation_id: int, payloads: Sequence[tuple[int, str]], now: datetime
    ) -> None:
        received = utc_micros(now)
        with self._write() as db:
            db.executemany(
                "INSERT INTO refused_payloads (operation_id, received_at, event_index, payload)"
                " VALUES (?, ?, ?, ?)",
                [(operation_id, received, index, payload) for index, payload in payloads],
            )

    async def refused_payloads(
        self, operation_id: int, since: datetime, limit: int
    ) -> dict[tuple[datetime, int], str]:
        rows = self._db.execute(
            "SELECT received_at, event_index, payload FROM refused_payloads"
            " WHERE operation_id = ? AND received_at >= ? ORDER BY seq DESC LIMIT ?",
            (operation_id, utc_micros(since), limit),
        ).fetchall()
        return {
            (EPOCH + timedelta(microseconds=received), index): payload
            for received, index, payload in reversed(rows)
        }

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
            f"SELECT {LEDGER_ENTRY_COLUMNS} FROM effective_events WHERE operation_id = ?"
            " AND (? IS NULL OR meter = ?) AND (? IS NULL OR occurred_at >= ?)"
            " AND (? IS NULL OR occurred_at < ?) AND (? IS NULL OR event_id = ?)"
            " ORDER BY seq DESC LIMIT ?",
            (
                operation_id,
                *(meter, meter),
                *((None, None) if since is None else (utc_micros(since),) * 2),
                *((None, None) if until is None else (utc_micros(until),) * 2),
                *(event_id, event_id),
                limit,
            ),
        )
        return SPELLING.ledger_entries(rows)

    async def recent_rejections(self, operation_id: int, limit: int) -> list[RejectionRecord]:
        rows = self._db.execute(
            f"SELECT {REJECTION_COLUMNS} FROM rejections"
            " WHERE operation_id = ? ORDER BY seq DESC LIMIT ?",
            (operation_id, limit),
        )
        return SPELLING.rejections(rows)

    async def dropped_rejections(self, operation_id: int) -> int:
        row = self._db.execute(
            "SELECT dropped FROM rejections_dropped WHERE operation_id = ?", (operation_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    async def ledger_by_day(self, operation_id: int) -> dict[tuple[str, date], DayFigures]:
        totals = [
            (meter, date.fromisoformat(day), total)
            for meter, day, total in self._db.execute(
                "SELECT meter, day, sum(effective_quantity) FROM effective_events"
                " WHERE operation_id = ? AND effective_quantity IS NOT NULL GROUP BY meter, day",
                (operation_id,),
            )
            if meter not in GAUGE_METERS
        ]
        gauge_rows = [
            (meter, date.fromisoformat(day), value)
            for meter, day, value in self._db.execute(
                "SELECT meter, day, effective_quantity FROM effective_events"
                " WHERE operation_id = ? AND effective_quantity IS NOT NULL"
                f" AND meter IN ({','.join('?' * len(GAUGE_METERS))})"
                " ORDER BY meter, day, occurred_at, seq",
                (operation_id, *sorted(GAUGE_METERS)),
            )
        ]
        return ledger_figures(totals, gauge_rows)


def _drop_rejections(db: sqlite3.Connection, below_seq: int, operation_id: int | None) -> None:
    """Drop rejections older than ``below_seq`` (of one operation, or of all), counting them."""
    db.execute(
        "INSERT INTO rejections_dropped (operation_id, dropped)"
        " SELECT operation_id, count(*) FROM rejections"
        " WHERE seq < ? AND (? IS NULL OR operation_id = ?) GROUP BY operation_id"
        " ON CONFLICT (operation_id) DO UPDATE SET dropped = dropped + excluded.dropped",
        (below_seq, operation_id, operation_id),
    )
    db.execute(
        "DELETE FROM rejections WHERE seq < ? AND (? IS NULL OR operation_id = ?)",
        (below_seq, operation_id, operation_id),
    )
