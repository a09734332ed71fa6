"""The PostgreSQL store: its parts composed, the figure cache in front of its rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from voxmeter.storage.figures import CachedFigures, FigureCache
from voxmeter.storage.ports import DatabaseTimeouts, Store
from voxmeter.storage.postgres.admission import PostgresAdmission
from voxmeter.storage.postgres.alerts import PostgresAlerts
from voxmeter.storage.postgres.connection import Pool, open_pool
from voxmeter.storage.postgres.ledger import PostgresLedger, month_start, next_month
from voxmeter.storage.postgres.operations import PostgresOperations
from voxmeter.storage.postgres.rollups import PostgresRollups
from voxmeter.storage.postgres.tokens import PostgresTokens


class PostgresStore(
    CachedFigures,
    PostgresAdmission,
    PostgresLedger,
    PostgresOperations,
    PostgresTokens,
    PostgresRollups,
    PostgresAlerts,
    Store,
):
    def __init__(self, url: str, pool: Pool) -> None:
        self.url = url
        self._pool = pool
        self._partitions = set()
        self.figures = FigureCache()
        self._start_admissions()
        self._start_releases()

    @classmethod
    async def connect(
        cls, url: str, pool_size: int = 10, timeouts: DatabaseTimeouts | None = None
    ) -> PostgresStore:
        pool = await open_pool(url, pool_size, timeouts)
        store = cls(url, pool)
        today = datetime.now(UTC).date()
        for month in (month_start(today - timedelta(days=31)), month_start(today)):
            await store.ensure_partition(month)
        await store.ensure_partition(next_month(today))
        return store

    async def close(self) -> None:
        await self._pool.close()

    async def schema_revision(self) -> str | None:
        row = await self._one("SELECT version_num FROM alembic_version")
        return None if row is None else str(row[0])

    async def ledger_size(self) -> int:
        (size,) = await self._one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_seq_seq"
        )
        return int(size)
