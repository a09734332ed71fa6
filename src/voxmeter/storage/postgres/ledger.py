"""The usage ledger in PostgreSQL: events, corrections, rejections, rollups kept in step.

Rollup changes move the operation's ``ledger_version`` on (a trigger), which
admission reports to the figure cache; so ledger writes here need not
clear it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from psycopg import sql

from voxmeter.contract.meters import GAUGE_METERS
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
from voxmeter.storage.ports import LedgerStore
from voxmeter.storage.postgres.alerts import LEDGER_LOCK, guard
from voxmeter.storage.postgres.connection import SPELLING, Connection, PostgresPart
from voxmeter.storage.rows import LEDGER_ENTRY_COLUMNS, REJECTION_COLUMNS, ledger_figures

_GAUGES = sorted(GAUGE_METERS)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


class PostgresLedger(PostgresPart, LedgerStore):
    _partitions: set[date]

    async def ensure_partition(self, month: date) -> None:
        """Create the ledger partition of ``month`` unless it exists.

        Rows of that month already in the DEFAULT partition (written while it
        did not exist) are moved into it, in the same transaction.
        """
        month = month_start(month)
        if month in self._partitions:
            return
        name = sql.Identifier(f"events_{month:%Y_%m}")
        bounds = (month, next_month(month))
        async with self._pool.connection() as conn, conn.transaction():
            # Workers starting together would race to create the same month.
            await conn.execute("SELECT pg_advisory_xact_lock(72453)")
            exists = await (
                await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name.as_string(),))
            ).fetchone()
            if not (exists and exists[0]):
                await conn.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
                await conn.execute(
                    sql.SQL("CREATE TABLE {} (LIKE events INCLUDING DEFAULTS)").format(name)
                )
                await conn.execute(
                    sql.SQL(
                        "WITH moved AS (DELETE FROM events_default"
                        " WHERE day >= %s AND day < %s RETURNING *)"
                        " INSERT INTO {} SELECT * FROM moved"
                    ).format(name),
                    bounds,
                )
                await conn.execute(
                    sql.SQL(
                        "ALTER TABLE events ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})"
                    ).format(name, sql.Literal(bounds[0]), sql.Literal(bounds[1]))
                )
        self._partitions.add(month)

    async def record_events(
        self, operation_id: int, events: Sequence[LedgerEvent], now: datetime
    ) -> RecordOutcome:
        for month in {month_start(e.day) for e in events}:
            await self.ensure_partition(month)
        # A concurrent batch with some of the same ids can commit between our
        # read and our insert; the unique key makes us wait for it and skip
        # those ids, and we then sort the batch out again from a fresh read.
        for _ in range(5):
            try:
                return await self._record_once(operation_id, events, now)
            except _Raced:
                continue
        raise RuntimeError("the batch kept racing with concurrent writers of the same ids")

    @staticmethod
    async def _fingerprints(
        conn: Connection, operation_id: int, event_ids: list[str]
    ) -> dict[str, bytes]:
        cursor = await conn.execute(
            "SELECT event_id, fingerprint FROM event_keys"
            " WHERE operation_id = %s AND event_id = ANY(%s::text[])",
            (operation_id, event_ids),
        )
        return {event_id: bytes(fingerprint) for event_id, fingerprint in await cursor.fetchall()}

    async def _record_once(
        self, operation_id: int, events: Sequence[LedgerEvent], now: datetime
    ) -> RecordOutcome:
        async with self._pool.connection() as conn, conn.transaction():
            stored = await self._fingerprints(conn, operation_id, [e.event_id for e in events])
            outcome, fresh = classify(events, stored)
            if outcome.conflicts or not fresh:
                return outcome
            cursor = await conn.execute(
                "INSERT INTO event_keys (operation_id, event_id, fingerprint)"
                " SELECT %s, unnest(%s::text[]), unnest(%s::bytea[])"
                " ON CONFLICT DO NOTHING RETURNING event_id",
                (operation_id, [e.event_id for e in fresh], [e.fingerprint for e in fresh]),
            )
            if len(await cursor.fetchall()) < len(fresh):
                raise _Raced  # rolls this transaction back
            changes = fold(fresh, GAUGE_METERS)
            summed = {key: c.total for key, c in changes.items() if key[0] not in GAUGE_METERS}
            await guard(conn, operation_id, summed, now, capped=True, locked=False)
            await conn.execute(
                "INSERT INTO events (operation_id, event_id, meter, quantity, occurred_at, day,"
                " attributes, fingerprint, received_at)"
                " SELECT %s, unnest(%s::text[]), unnest(%s::text[]), unnest(%s::bigint[]),"
                " unnest(%s::timestamptz[]), unnest(%s::date[]), unnest(%s::text[]),"
                " unnest(%s::bytea[]), %s",
                (
                    operation_id,
                    [e.event_id for e in fresh],
                    [e.meter for e in fresh],
                    [e.quantity for e in fresh],
                    [e.occurred_at for e in fresh],
                    [e.day for e in fresh],
                    [e.attributes for e in fresh],
                    [e.fingerprint for e in fresh],
                    now,
                ),
            )
            await conn.execute(
                "INSERT INTO rollups AS r (operation_id, meter, day, total, gauge_value, gauge_at)"
                " SELECT %s, unnest(%s::text[]), unnest(%s::date[]), unnest(%s::bigint[]),"
                " unnest(%s::bigint[]), unnest(%s::timestamptz[])"
                " ON CONFLICT (operation_id, meter, day) DO UPDATE SET"
                " total = r.total + excluded.total,"
                " gauge_value = CASE WHEN excluded.gauge_at IS NOT NULL AND"
                "   (r.gauge_at IS NULL OR excluded.gauge_at >= r.gauge_at)"
                "   THEN excluded.gauge_value ELSE r.gauge_value END,"
                " gauge_at = greatest(r.gauge_at, excluded.gauge_at)",
                (
                    operation_id,
                    [meter for meter, _ in changes],
                    [day for _, day in changes],
                    [c.total for c in changes.values()],
                    [c.gauge_value for c in changes.values()],
                    [c.gauge_at for c in changes.values()],
                ),
            )
        return outcome

    async def event_meters(self, operation_id: int, event_ids: Sequence[str]) -> dict[str, str]:
        rows = await self._all(
            "SELECT DISTINCT event_id, meter FROM events"
            " WHERE operation_id = %s AND event_id = ANY(%s::text[])",
            (operation_id, list(event_ids)),
        )
        return dict(rows)

    async def correct_events(
        self, operation_id: int, corrections: Sequence[Correction], now: datetime
    ) -> list[CorrectionResult]:
        async with self._pool.connection() as conn, conn.transaction():
            # Serialise corrections of this operation: each reads then adjusts.
            await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LEDGER_LOCK, operation_id))
            cursor = await conn.execute(
                "SELECT event_id, meter, day, effective_quantity FROM effective_events"
                " WHERE operation_id = %s AND event_id = ANY(%s::text[])",
                (operation_id, [c.event_id for c in corrections]),
            )
            states: dict[str, EventState[date]] = {
                event_id: (meter, day, counted)
                for event_id, meter, day, counted in await cursor.fetchall()
            }
            plan = plan_corrections(corrections, states)
            if plan.unknown:
                return plan.results
            for correction, quantity in plan.appended:
                await conn.execute(
                    "INSERT INTO corrections (operation_id, event_id, action, quantity, reason,"
                    " created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        operation_id,
                        correction.event_id,
                        correction.action.value,
                        quantity,
                        correction.reason,
                        now,
                    ),
                )
            await guard(conn, operation_id, plan.counter_deltas, now, capped=False, locked=True)
            for (meter, day), delta in plan.counter_deltas.items():
                await conn.execute(
                    "UPDATE rollups SET total = total + %s"
                    " WHERE operation_id = %s AND meter = %s AND day = %s",
                    (delta, operation_id, meter, day),
                )
            for meter, day in plan.gauge_days:
                latest = await (
                    await conn.execute(
                        "SELECT effective_quantity, occurred_at FROM effective_events"
                        " WHERE operation_id = %s AND meter = %s AND day = %s"
                        " AND effective_quantity IS NOT NULL"
                        " ORDER BY occurred_at DESC, seq DESC LIMIT 1",
                        (operation_id, meter, day),
                    )
                ).fetchone()
                await conn.execute(
                    "UPDATE rollups SET gauge_value = %s, gauge_at = %s"
                    " WHERE operation_id = %s AND meter = %s AND day = %s",
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
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO rejections (operation_id, received_at, event_index, event_id, reason)"
                " SELECT %s, %s, unnest(%s::integer[]), unnest(%s::text[]), unnest(%s::text[])",
                (
                    operation_id,
                    now,
                    [r.index for r in rejections],
                    [r.event_id for r in rejections],
                    [r.reason for r in rejections],
                ),
            )
            oldest_kept = await (
                await conn.execute(
                    "SELECT seq FROM rejections WHERE operation_id = %s"
                    " ORDER BY seq DESC LIMIT 1 OFFSET %s",
                    (operation_id, keep_per_operation - 1),
                )
            ).fetchone()
            if oldest_kept:
                await _drop_rejections(conn, oldest_kept[0], operation_id)
            # seq only grows, so the latest ``keep`` rows all lie above this
            # (gaps left by rolled-back inserts only make it keep fewer).
            newest = await (await conn.execute("SELECT max(seq) FROM rejections")).fetchone()
            assert newest is not None
            await _drop_rejections(conn, newest[0] - keep + 1, None)

    async def keep_refused_payloads(
        self, operation_id: int, payloads: Sequence[tuple[int, str]], now: datetime
    ) -> None:
        await self._all(
            "INSERT INTO refused_payloads (operation_id, received_at, event_index, payload)"
            " SELECT %s, %s, unnest(%s::integer[]), unnest(%s::text[]) RETURNING seq",
            (operation_id, now, [index for index, _ in payloads], [p for _, p in payloads]),
        )

    async def refused_payloads(
        self, operation_id: int, since: datetime, limit: int
    ) -> dict[tuple[datetime, int], str]:
        rows = await self._all(
            "SELECT received_at, event_index, payload FROM refused_payloads"
            " WHERE operation_id = %s AND received_at >= %s ORDER BY seq DESC LIMIT %s",
            (operation_id, since, limit),
        )
        return {(received, index): payload for received, index, payload in reversed(rows)}

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
        rows = await self._all(
            f"SELECT {LEDGER_ENTRY_COLUMNS} FROM effective_events WHERE operation_id = %s"
            " AND (%s::text IS NULL OR meter = %s)"
            " AND (%s::timestamptz IS NULL OR occurred_at >= %s)"
            " AND (%s::timestamptz IS NULL OR occurred_at < %s)"
            " AND (%s::text IS NULL OR event_id = %s)"
            " ORDER BY seq DESC LIMIT %s",
            (operation_id, *(meter,) * 2, *(since,) * 2, *(until,) * 2, *(event_id,) * 2, limit),
        )
        return SPELLING.ledger_entries(rows)

    async def recent_rejections(self, operation_id: int, limit: int) -> list[RejectionRecord]:
        rows = await self._all(
            f"SELECT {REJECTION_COLUMNS} FROM rejections"
            " WHERE operation_id = %s ORDER BY seq DESC LIMIT %s",
            (operation_id, limit),
        )
        return SPELLING.rejections(rows)

    async def dropped_rejections(self, operation_id: int) -> int:
        row = await self._one(
            "SELECT dropped FROM rejections_dropped WHERE operation_id = %s", (operation_id,)
        )
        return int(row[0]) if row else 0

    async def ledger_by_day(self, operation_id: int) -> dict[tuple[str, date], DayFigures]:
        totals = await self._all(
            "SELECT meter, day, sum(effective_quantity) FROM effective_events"
            " WHERE operation_id = %s AND effective_quantity IS NOT NULL"
            " AND NOT meter = ANY(%s::text[]) GROUP BY meter, day",
            (operation_id, _GAUGES),
        )
        gauge_rows = await self._all(
            "SELECT meter, day, effective_quantity FROM effective_events"
            " WHERE operation_id = %s AND effective_quantity IS NOT NULL"
            " AND meter = ANY(%s::text[]) ORDER BY meter, day, occurred_at, seq",
            (operation_id, _GAUGES),
        )
        return ledger_figures(totals, gauge_rows)


class _Raced(Exception):
    """Raised inside a transaction to roll it back and read again."""


async def _drop_rejections(conn: Connection, below_seq: int, operation_id: int | None) -> None:
    """Drop rejections older than ``below_seq`` (of one operation, or of all), counting them."""
    await conn.execute(
        "WITH dropped AS (DELETE FROM rejections WHERE seq < %s"
        " AND (%s::bigint IS NULL OR operation_id = %s) RETURNING operation_id)"
        " INSERT INTO rejections_dropped (operation_id, dropped)"
        " SELECT operation_id, count(*) FROM dropped GROUP BY operation_id"
        " ON CONFLICT (operation_id) DO UPDATE"
        " SET dropped = rejections_dropped.dropped + excluded.dropped",
        (below_seq, operation_id, operation_id),
    )
