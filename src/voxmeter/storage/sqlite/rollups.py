"""The rollups reports read, in SQLite (days are stored as ISO text)."""

from __future__ import annotations

from datetime import date

from voxmeter.domain.ledger import DayFigures
from voxmeter.storage.ports import RollupReader
from voxmeter.storage.sqlite.connection import SQLitePart


class SQLiteRollups(SQLitePart, RollupReader):
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
        (total,) = self._db.execute(
            "SELECT coalesce(sum(total), 0) FROM rollups"
            " WHERE operation_id = ? AND meter = ? AND day BETWEEN ? AND ?",
            (operation_id, meter, first_day.isoformat(), last_day.isoformat()),
        ).fetchone()
        return int(total)

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
        row = self._db.execute(
            "SELECT gauge_value FROM rollups WHERE operation_id = ? AND meter = ?"
            " AND day <= ? AND gauge_at IS NOT NULL ORDER BY day DESC LIMIT 1",
            (operation_id, meter, day.isoformat()),
        ).fetchone()
        return None if row is None else int(row[0])
