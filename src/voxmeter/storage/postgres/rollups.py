"""The rollups reports read, in PostgreSQL."""

from __future__ import annotations

from datetime import date

from voxmeter.domain.ledger import DayFigures
from voxmeter.storage.ports import RollupReader
from voxmeter.storage.postgres.connection import PostgresPart


class PostgresRollups(PostgresPart, RollupReader):
    async def rollups_by_day(self, operation_id: int) -> dict[tuple[str, date], DayFigures]:
        rows = await self._all(
            "SELECT meter, day, total, gauge_value FROM rollups WHERE operation_id = %s",
            (operation_id,),
        )
        return {(meter, day): (total, gauge) for meter, day, total, gauge in rows}

    async def summed_total(
        self, operation_id: int, meter: str, first_day: date, last_day: date
    ) -> int:
        (total,) = await self._one(
            "SELECT coalesce(sum(total), 0) FROM rollups"
            " WHERE operation_id = %s AND meter = %s AND day BETWEEN %s AND %s",
            (operation_id, meter, first_day, last_day),
        )
        return int(total)

    async def daily_rollups(
        self, operation_id: int, meter: str, first_day: date, last_day: date
    ) -> dict[date, tuple[int, int | None]]:
        rows = await self._all(
            "SELECT day, total, gauge_value FROM rollups"
            " WHERE operation_id = %s AND meter = %s AND day BETWEEN %s AND %s",
            (operation_id, meter, first_day, last_day),
        )
        return {day: (total, gauge) for day, total, gauge in rows}

    async def gauge_value(self, operation_id: int, meter: str, day: date) -> int | None:
        row = await self._one(
            "SELECT gauge_value FROM rollups WHERE operation_id = %s AND meter = %s"
            " AND day <= %s AND gauge_at IS NOT NULL ORDER BY day DESC LIMIT 1",
            (operation_id, meter, day),
        )
        return None if row is None else int(row[0])
