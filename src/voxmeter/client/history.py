"""A local SQLite history of polled figures: the API itself only shows the current month."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from voxmeter.client.models import Usage
from voxmeter.client.sync import Client

COLUMNS = ("taken_at", "source", "api", "operation", "description", "items", "date")


class History:
    """Snapshots, one row per (poll, meter); appended, never rewritten."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS snapshots (taken_at TEXT NOT NULL, source TEXT NOT NULL,"
            " api TEXT NOT NULL, operation TEXT NOT NULL, description TEXT NOT NULL,"
            " items TEXT NOT NULL, date TEXT NOT NULL, PRIMARY KEY (source, api, taken_at))"
        )

    def append(self, taken_at: datetime, source: str, rows: Iterable[Usage]) -> int:
        with self._db:
            cursor = self._db.executemany(
                "INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        taken_at.isoformat(timespec="seconds"),
                        source,
                        row.api,
                        row.operation,
                        row.description,
                        str(row.items),
                        row.date.isoformat(),
                    )
                    for row in rows
                ],
            )
            return cursor.rowcount

    def rows(self, month: str | None = None) -> list[tuple[str, ...]]:
        """Every snapshot (of one ``YYYY-MM`` month of figures, if given), in COLUMNS."""
        query = f"SELECT {', '.join(COLUMNS)} FROM snapshots"
        params: tuple[str, ...] = ()
        if month:
            query += " WHERE substr(date, 1, 7) = ?"
            params = (month,)
        return self._db.execute(query + " ORDER BY taken_at, api", params).fetchall()

    def export_csv(self, out: IO[str], month: str | None = None) -> int:
        """Every snapshot (of one ``YYYY-MM`` month of figures, if given) as CSV."""
        rows = self.rows(month)
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
        return len(rows)

    def close(self) -> None:
        self._db.close()


def watch(
    client: Client,
    history: History,
    apis: list[str],
    every: float,
    count: int | None,
    sleep: Callable[[float], None],
    on_snapshot: Callable[[datetime, list[Usage]], None] = lambda _, __: None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Poll ``apis`` every ``every`` seconds (``count`` times, or forever); rows stored."""
    stored, polls = 0, 0
    while count is None or polls < count:
        if polls:
            sleep(every)
        taken_at = now()
        rows = [client.usage(api) for api in apis]
        stored += history.append(taken_at, client.base_url, rows)
        polls += 1
        on_snapshot(taken_at, rows)
    return stored
