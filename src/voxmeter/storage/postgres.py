"""The PostgreSQL store: several workers, on one machine or many, share it.

Every method is one round trip where it can be (admission is one call of a
server-side function); batches go in as arrays through ``unnest``. Month
partitions of the ledger are created ahead of use, with a DEFAULT partition
behind them so an insert never fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, errors, sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from voxmeter.contract.meters import GAUGE_METERS
from voxmeter.domain.admission import Admission, Quota, Usage, Verdict
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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_GAUGES = sorted(GAUGE_METERS)

_OPERATION_COLUMNS = (
    "o.id, o.name, o.server_id, o.timezone, o.licenses, o.pbx, o.created_at,"
    " ARRAY(SELECT s.service FROM operation_services s WHERE s.operation_id = o.id),"
    " o.revision"
)
_TOKEN_COLUMNS = (
    "t.id, t.operation_id, t.scope, t.description, t.created_at,"
    " (SELECT max(c.last_at) FROM token_calls c WHERE c.token_id = t.id), t.revoked_at"
)


def _operation(row: Sequence[Any]) -> Operation:
    return Operation(
        id=row[0],
        name=row[1],
        server_id=row[2],
        timezone=row[3],
        licenses=row[4],
        pbx=row[5],
        created_at=row[6],
        services=frozenset(row[7]),
        revision=row[8],
    )


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


class PostgresStore(Store):
    def __init__(self, url: str, pool: AsyncConnectionPool[AsyncConnection[TupleRow]]) -> None:
        self.url = url
        self._pool = pool
        self._partitions: set[date] = set()
        self._admissions = TurnBatcher(self._admit_all, self._give_back)
        # Slots are given back even when nobody waits any more for the answer,
        # and at once: releases of distinct slots do not contend.
        self._releases = TurnBatcher(self._release_all, serve_abandoned=True, one_at_a_time=False)
        self._figures = FigureCache()

    @classmethod
    async def connect(cls, url: str, pool_size: int = 10) -> PostgresStore:
        pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
            open=False,
        )
        await pool.open(wait=True)
        store = cls(url, pool)
        today = datetime.now(UTC).date()
        for month in (_month_start(today - timedelta(days=31)), _month_start(today)):
            await store.ensure_partition(month)
        await store.ensure_partition(_next_month(today))
        return store

    async def close(self) -> None:
        await self._pool.close()

    async def _one(self, query: str, params: Sequence[Any] = ()) -> Any:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchone()

    async def _all(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()

    async def schema_revision(self) -> str | None:
        row = await self._one("SELECT version_num FROM alembic_version")
        return None if row is None else str(row[0])

    async def ledger_size(self) -> int:
        (size,) = await self._one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_seq_seq"
        )
        return int(size)

    # -- partitions ------------------------------------------------------

    async def ensure_partition(self, month: date) -> None:
        """Create the ledger partition of ``month`` unless it exists.

        Rows of that month already in the DEFAULT partition (written while it
        did not exist) are moved into it, in the same transaction.
        """
        month = _month_start(month)
        if month in self._partitions:
            return
        name = sql.Identifier(f"events_{month:%Y_%m}")
        bounds = (month, _next_month(month))
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

    # -- operations ------------------------------------------------------

    async def create_operation(self, new: NewOperation, now: datetime) -> Operation:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cursor = await conn.execute(
                    "INSERT INTO operations (name, server_id, timezone, licenses, pbx, created_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    (new.name, new.server_id, new.timezone, new.licenses, new.pbx, now),
                )
                row = await cursor.fetchone()
                assert row is not None
                await self._set_services(conn, row[0], new.services)
        except errors.UniqueViolation as exc:
            raise OperationExists(new.name) from exc
        created = await self.get_operation(new.name)
        assert created is not None
        return created

    @staticmethod
    async def _set_services(
        conn: AsyncConnection[TupleRow], operation_id: int, services: frozenset[str]
    ) -> None:
        await conn.execute(
            "DELETE FROM operation_services WHERE operation_id = %s", (operation_id,)
        )
        await conn.execute(
            "INSERT INTO operation_services (operation_id, service) SELECT %s, unnest(%s::text[])",
            (operation_id, sorted(services)),
        )

    async def update_operation(self, name: str, changes: OperationChanges) -> Operation:
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "UPDATE operations SET licenses = coalesce(%s, licenses),"
                " server_id = coalesce(%s, server_id), timezone = coalesce(%s, timezone),"
                " pbx = coalesce(%s, pbx), revision = revision + 1 WHERE name = %s RETURNING id",
                (changes.licenses, changes.server_id, changes.timezone, changes.pbx, name),
            )
            row = await cursor.fetchone()
            if row is None:
                raise UnknownOperation(name)
            if changes.services is not None:
                await self._set_services(conn, row[0], changes.services)
        updated = await self.get_operation(name)
        assert updated is not None
        return updated

    async def get_operation(self, name: str) -> Operation | None:
        row = await self._one(
            f"SELECT {_OPERATION_COLUMNS} FROM operations o WHERE o.name = %s", (name,)
        )
        return None if row is None else _operation(row)

    async def list_operations(self) -> list[Operation]:
        rows = await self._all(f"SELECT {_OPERATION_COLUMNS} FROM operations o ORDER BY o.name")
        return [_operation(row) for row in rows]

    # -- tokens ----------------------------------------------------------

    @staticmethod
    def _token(row: Sequence[Any]) -> Token:
        return Token(
            id=row[0],
            operation_id=row[1],
            scope=TokenScope(row[2]),
            description=row[3],
            created_at=row[4],
            last_used_at=row[5],
            revoked_at=row[6],
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
        await self._one(
            "INSERT INTO tokens (id, operation_id, secret_hash, scope, description, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (token_id, operation_id, secret_hash, scope.value, description, now),
        )
        token = await self.get_token(token_id)
        assert token is not None
        return token

    async def find_credential(self, token_id: str) -> Credential | None:
        row = await self._one(
            f"SELECT {_TOKEN_COLUMNS}, {_OPERATION_COLUMNS}, t.secret_hash FROM tokens t"
            " JOIN operations o ON o.id = t.operation_id"
            " WHERE t.id = %s AND t.revoked_at IS NULL",
            (token_id,),
        )
        if row is None:
            return None
        principal = Principal(token=self._token(row[:7]), operation=_operation(row[7:16]))
        return Credential(principal=principal, secret_hash=bytes(row[16]))

    async def list_tokens(self, operation_id: int) -> list[Token]:
        rows = await self._all(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens t WHERE t.operation_id = %s"
            " ORDER BY t.created_at, t.id",
            (operation_id,),
        )
        return [self._token(row) for row in rows]

    async def get_token(self, token_id: str) -> Token | None:
        row = await self._one(f"SELECT {_TOKEN_COLUMNS} FROM tokens t WHERE t.id = %s", (token_id,))
        return None if row is None else self._token(row)

    async def revoke_token(self, token_id: str, now: datetime) -> bool:
        row = await self._one(
            "UPDATE tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL RETURNING id",
            (now, token_id),
        )
        return row is not None

    # -- limits ------------------------------------------------------------

    async def admit(
        self,
        principal: Principal,
        quota: Quota,
        concurrency: int,
        lease_until: datetime,
        now: datetime,
    ) -> Admission:
        # The calls that ask in one event-loop turn share one round trip.
        return await self._admissions.submit(
            AdmissionRequest(principal, quota, concurrency, lease_until, now)
        )

    async def _admit_all(self, asks: list[AdmissionRequest]) -> list[Admission]:
        rows = await self._all(
            "SELECT * FROM voxmeter_admit_all(%s::text[], %s::bigint[], %s::bigint[],"
            " %s::date[], %s::bigint[], %s::bigint[], %s::integer[], %s::timestamptz[],"
            " %s::timestamptz[])",
            (
                [ask.principal.token.id for ask in asks],
                [ask.principal.operation.id for ask in asks],
                [ask.principal.operation.revision for ask in asks],
                [ask.quota.day for ask in asks],
                [ask.quota.token_limit for ask in asks],
                [ask.quota.operation_limit for ask in asks],
                [ask.concurrency for ask in asks],
                [ask.lease_until for ask in asks],
                [ask.now for ask in asks],
            ),
        )
        admissions = []
        for ask, (verdict, token_used, operation_used, slot, ledger_version) in zip(
            asks, rows, strict=True
        ):
            if ledger_version is not None:
                self._figures.seen(ask.principal.operation.id, ledger_version)
            usage = Usage(token_used=token_used, operation_used=operation_used)
            if slot is None:
                admissions.append(Admission(Verdict(verdict), usage))
            else:
                lease = (ask.lease_until - _EPOCH) // _MICROSECOND
                admissions.append(Admission(Verdict(verdict), usage, slot=slot, lease=lease))
        return admissions

    async def _give_back(self, ask: AdmissionRequest, admission: Admission) -> None:
        """The slot of a call admitted but gone (cancelled) before it could run."""
        if admission.slot is not None and admission.lease is not None:
            await self.release(ask.principal.token.id, admission.slot, admission.lease)

    async def release(self, token_id: str, slot: int, lease: int) -> None:
        await self._releases.submit((token_id, slot, _EPOCH + timedelta(microseconds=lease)))

    async def _release_all(self, slots: list[tuple[str, int, datetime]]) -> list[None]:
        tokens, numbers, leases = zip(*slots, strict=True)
        await self._one(
            "SELECT voxmeter_release_all(%s::text[], %s::integer[], %s::timestamptz[])",
            (list(tokens), list(numbers), list(leases)),
        )
        return [None] * len(slots)

    async def calls_today(self, token_id: str, operation_id: int, day: date) -> Usage:
        token_used, operation_used = await self._one(
            "SELECT (SELECT used FROM token_calls WHERE token_id = %s AND day = %s),"
            " (SELECT used FROM operation_calls WHERE operation_id = %s AND day = %s)",
            (token_id, day, operation_id, day),
        )
        return Usage(token_used=token_used or 0, operation_used=operation_used or 0)

    # -- usage -------------------------------------------------------------

    async def record_events(
        self, operation_id: int, events: Sequence[LedgerEvent], now: datetime
    ) -> RecordOutcome:
        for month in {_month_start(e.day) for e in events}:
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
        conn: AsyncConnection[TupleRow], operation_id: int, event_ids: list[str]
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
            changes = fold(fresh, GAUGE_METERS)
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
            await conn.execute("SELECT pg_advisory_xact_lock(72452, %s)", (operation_id,))
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
        self, operation_id: int, rejections: Sequence[Rejection], now: datetime
    ) -> None:
        await self._all(
            "INSERT INTO rejections (operation_id, received_at, event_index, event_id, reason)"
            " SELECT %s, %s, unnest(%s::integer[]), unnest(%s::text[]), unnest(%s::text[])"
            " RETURNING seq",
            (
                operation_id,
                now,
                [r.index for r in rejections],
                [r.event_id for r in rejections],
                [r.reason for r in rejections],
            ),
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
        rows = await self._all(
            "SELECT event_id, meter, quantity, effective_quantity, last_action, occurred_at,"
            " received_at FROM effective_events WHERE operation_id = %s"
            " AND (%s::text IS NULL OR meter = %s)"
            " AND (%s::timestamptz IS NULL OR occurred_at >= %s)"
            " AND (%s::timestamptz IS NULL OR occurred_at < %s)"
            " AND (%s::text IS NULL OR event_id = %s)"
            " ORDER BY seq DESC LIMIT %s",
            (operation_id, *(meter,) * 2, *(since,) * 2, *(until,) * 2, *(event_id,) * 2, limit),
        )
        states = {None: "counted", "amend": "amended", "void": "voided"}
        return [
            LedgerEntry(
                event_id=event_id,
                meter=meter,
                quantity=quantity,
                effective_quantity=effective,
                state=states[action],
                occurred_at=occurred,
                received_at=received,
            )
            for event_id, meter, quantity, effective, action, occurred, received in rows
        ]

    async def recent_rejections(self, operation_id: int, limit: int) -> list[RejectionRecord]:
        rows = await self._all(
            "SELECT received_at, event_index, event_id, reason FROM rejections"
            " WHERE operation_id = %s ORDER BY seq DESC LIMIT %s",
            (operation_id, limit),
        )
        return [
            RejectionRecord(received_at=received, index=index, event_id=event_id, reason=reason)
            for received, index, event_id, reason in rows
        ]

    async def ledger_by_day(self, operation_id: int) -> dict[tuple[str, date], DayFigures]:
        figures: dict[tuple[str, date], DayFigures] = {}
        for meter, day, total in await self._all(
            "SELECT meter, day, sum(effective_quantity) FROM effective_events"
            " WHERE operation_id = %s AND effective_quantity IS NOT NULL"
            " AND NOT meter = ANY(%s::text[]) GROUP BY meter, day",
            (operation_id, _GAUGES),
        ):
            figures[(meter, day)] = (int(total), None)
        gauges = last_gauge_values(
            await self._all(
                "SELECT meter, day, effective_quantity FROM effective_events"
                " WHERE operation_id = %s AND effective_quantity IS NOT NULL"
                " AND meter = ANY(%s::text[]) ORDER BY meter, day, occurred_at, seq",
                (operation_id, _GAUGES),
            )
        )
        for key, value in gauges.items():
            figures[key] = (0, value)
        return figures

    async def rollups_by_day(self, operation_id: int) -> dict[tuple[str, date], DayFigures]:
        rows = await self._all(
            "SELECT meter, day, total, gauge_value FROM rollups WHERE operation_id = %s",
            (operation_id,),
        )
        return {(meter, day): (total, gauge) for meter, day, total, gauge in rows}

    async def summed_total(
        self, operation_id: int, meter: str, first_day: date, last_day: date
    ) -> int:
        async def read() -> int:
            (total,) = await self._one(
                "SELECT coalesce(sum(total), 0) FROM rollups"
                " WHERE operation_id = %s AND meter = %s AND day BETWEEN %s AND %s",
                (operation_id, meter, first_day, last_day),
            )
            return int(total)

        key = ("sum", operation_id, meter, first_day, last_day)
        return await self._figures.read_through(key, read) or 0

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
        async def read() -> int | None:
            row = await self._one(
                "SELECT gauge_value FROM rollups WHERE operation_id = %s AND meter = %s"
                " AND day <= %s AND gauge_at IS NOT NULL ORDER BY day DESC LIMIT 1",
                (operation_id, meter, day),
            )
            return None if row is None else int(row[0])

        return await self._figures.read_through(("gauge", operation_id, meter, day, day), read)


class _Raced(Exception):
    """Raised inside a transaction to roll it back and read again."""
