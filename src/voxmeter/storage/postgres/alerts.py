"""Caps, alert rules, crossings, webhooks and the outbox in PostgreSQL.

:func:`guard` runs inside the ledger's transactions. When the operation has
a cap or rule on a meter of the change, it first takes the operation's
ledger lock (the one corrections take), so the month's sums it reads then
cannot move until it commits: two batches cannot both pass a cap, and a
level's crossing is recorded by exactly one of them (the crossing's primary
key would refuse a second anyway). Batches of meters nobody watches never
take the lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from voxmeter.domain.alerts import (
    AlertEvent,
    AlertKind,
    AlertRule,
    Delivery,
    Endpoint,
    Guards,
    Level,
    MeterCap,
    crossings,
    month_bounds,
    month_deltas,
    over_cap,
    period_of,
)
from voxmeter.storage import alert_rows
from voxmeter.storage.ports import AlertStore, CapExceeded
from voxmeter.storage.postgres.connection import Connection, PostgresPart

# The key corrections already lock an operation's ledger with.
LEDGER_LOCK = 72452


def _same(value: Any) -> Any:
    return value


async def _guards(conn: Connection, operation_id: int, meters: list[str]) -> Guards | None:
    cursor = await conn.execute(
        "SELECT meter, quantity, NULL, NULL, NULL FROM meter_caps"
        " WHERE operation_id = %s AND meter = ANY(%s::text[])"
        " UNION ALL SELECT meter, id, operation_id, levels, created_at FROM alert_rules"
        " WHERE meter = ANY(%s::text[]) AND (operation_id = %s OR operation_id IS NULL)",
        (operation_id, meters, meters, operation_id),
    )
    caps: dict[str, int] = {}
    rules: list[AlertRule] = []
    for meter, number, rule_operation, levels, created_at in await cursor.fetchall():
        if levels is None:
            caps[meter] = number
        else:
            rules.append(
                alert_rows.watching_rule((number, rule_operation, meter, levels, created_at), _same)
            )
    return Guards(caps, rules) if caps or rules else None


async def guard(
    conn: Connection,
    operation_id: int,
    changes: Mapping[tuple[str, date], int],
    now: datetime,
    *,
    capped: bool,
    locked: bool,
) -> None:
    """Check caps (when ``capped``) and record crossings for a change of summed meters.

    ``changes`` is per (meter, day), not yet applied to the rollups;
    ``locked`` says the caller holds the operation's ledger lock already.
    Raises :class:`CapExceeded`, which rolls the transaction back.
    """
    if not changes:
        return
    guards = await _guards(conn, operation_id, sorted({meter for meter, _ in changes}))
    if guards is None:
        return
    if not locked:
        await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LEDGER_LOCK, operation_id))
    watched = guards.watched()
    for (meter, first), delta in sorted(month_deltas(changes).items()):
        if meter not in watched or delta == 0:
            continue
        start, end = month_bounds(first)
        cursor = await conn.execute(
            "SELECT coalesce(sum(total), 0) FROM rollups"
            " WHERE operation_id = %s AND meter = %s AND day >= %s AND day < %s",
            (operation_id, meter, start, end),
        )
        (before,) = await cursor.fetchone() or (0,)
        before = int(before)
        after = before + delta
        cap = over_cap(guards, meter, after) if capped else None
        if cap is not None:
            raise CapExceeded(meter, cap, before, after)
        for crossing in crossings(guards, meter, period_of(first), before, after):
            key = (crossing.rule_id, operation_id, crossing.level, crossing.period)
            if crossing.kind is AlertKind.CROSSED:
                changed = await conn.execute(
                    "INSERT INTO alert_crossings (rule_id, operation_id, level, period,"
                    " crossed_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (*key, now),
                )
            else:
                changed = await conn.execute(
                    "DELETE FROM alert_crossings WHERE rule_id = %s AND operation_id = %s"
                    " AND level = %s AND period = %s",
                    key,
                )
            if not changed.rowcount:
                continue
            await conn.execute(
                "WITH event AS (INSERT INTO alert_events (id, kind, rule_id, operation_id,"
                " operation, meter, level, period, threshold, quantity, created_at)"
                " SELECT %s, %s, %s, id, name, %s, %s, %s, %s, %s, %s FROM operations"
                " WHERE id = %s RETURNING seq)"
                " INSERT INTO alert_deliveries (event_seq, endpoint_id, status, next_attempt_at)"
                " SELECT event.seq, w.id, 'pending', %s FROM event, webhook_endpoints w",
                (
                    f"msg_{uuid.uuid4().hex}",
                    crossing.kind.value,
                    crossing.rule_id,
                    meter,
                    crossing.level,
                    crossing.period,
                    crossing.threshold,
                    crossing.quantity,
                    now,
                    operation_id,
                    now,
                ),
            )


class PostgresAlerts(PostgresPart, AlertStore):
    # -- caps and rules --------------------------------------------------------

    async def set_cap(self, operation_id: int, meter: str, quantity: int) -> None:
        await self._all(
            "INSERT INTO meter_caps (operation_id, meter, quantity) VALUES (%s, %s, %s)"
            " ON CONFLICT (operation_id, meter) DO UPDATE SET quantity = excluded.quantity"
            " RETURNING quantity",
            (operation_id, meter, quantity),
        )

    async def clear_cap(self, operation_id: int, meter: str) -> bool:
        found = await self._all(
            "DELETE FROM meter_caps WHERE operation_id = %s AND meter = %s RETURNING meter",
            (operation_id, meter),
        )
        return bool(found)

    async def list_caps(self) -> list[MeterCap]:
        found = await self._all(
            "SELECT operation_id, meter, quantity FROM meter_caps ORDER BY operation_id, meter"
        )
        return [MeterCap(*row) for row in found]

    async def add_rule(
        self, operation_id: int | None, meter: str, levels: Sequence[Level], now: datetime
    ) -> AlertRule:
        row = await self._one(
            "INSERT INTO alert_rules (operation_id, meter, levels, created_at)"
            " VALUES (%s, %s, %s, %s) RETURNING id, operation_id, meter, levels, created_at",
            (operation_id, meter, ",".join(str(level) for level in levels), now),
        )
        return alert_rows.rule(row, _same)

    async def list_rules(self) -> list[AlertRule]:
        found = await self._all(
            "SELECT id, operation_id, meter, levels, created_at FROM alert_rules ORDER BY id"
        )
        return [alert_rows.rule(row, _same) for row in found]

    async def alert_events(self, limit: int) -> list[AlertEvent]:
        found = await self._all(
            f"SELECT {alert_rows.EVENT_COLUMNS} FROM alert_events e ORDER BY e.seq DESC LIMIT %s",
            (limit,),
        )
        return [alert_rows.event(row, _same) for row in found]

    # -- webhooks and deliveries -----------------------------------------------

    async def add_endpoint(self, url: str, secret: str, now: datetime) -> Endpoint:
        row = await self._one(
            "INSERT INTO webhook_endpoints (url, secret, created_at) VALUES (%s, %s, %s)"
            " RETURNING id, url, secret, previous_secret, created_at",
            (url, secret, now),
        )
        return alert_rows.endpoint(row, _same)

    async def list_endpoints(self) -> list[Endpoint]:
        found = await self._all(
            f"SELECT {alert_rows.ENDPOINT_COLUMNS} FROM webhook_endpoints w ORDER BY id"
        )
        return [alert_rows.endpoint(row, _same) for row in found]

    async def rotate_endpoint(self, endpoint_id: int, secret: str) -> bool:
        found = await self._all(
            "UPDATE webhook_endpoints SET previous_secret = secret, secret = %s"
            " WHERE id = %s RETURNING id",
            (secret, endpoint_id),
        )
        return bool(found)

    async def claim_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Delivery]:
        # SKIP LOCKED: workers claiming together each take different rows.
        claimed = await self._all(
            "UPDATE alert_deliveries SET lease_until = %s WHERE id IN ("
            " SELECT id FROM alert_deliveries WHERE status = 'pending'"
            " AND next_attempt_at <= %s AND (lease_until IS NULL OR lease_until < %s)"
            " ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id",
            (lease_until, now, now, limit),
        )
        if not claimed:
            return []
        found = await self._all(
            f"SELECT {alert_rows.DELIVERY_COLUMNS} FROM {alert_rows.DELIVERY_FROM}"
            " WHERE d.id = ANY(%s::bigint[]) ORDER BY d.id",
            ([delivery_id for (delivery_id,) in claimed],),
        )
        return [alert_rows.delivery(row, _same) for row in found]

    async def finish_delivery(
        self,
        delivery_id: int,
        *,
        status: str,
        error: str | None,
        next_attempt_at: datetime,
        now: datetime,
    ) -> None:
        await self._all(
            "UPDATE alert_deliveries SET status = %s, attempts = attempts + 1,"
            " last_error = %s, next_attempt_at = %s, lease_until = NULL,"
            " delivered_at = CASE WHEN %s = 'delivered' THEN %s ELSE delivered_at END"
            " WHERE id = %s RETURNING id",
            (status, error, next_attempt_at, status, now, delivery_id),
        )

    async def list_deliveries(self, limit: int) -> list[Delivery]:
        found = await self._all(
            f"SELECT {alert_rows.DELIVERY_COLUMNS} FROM {alert_rows.DELIVERY_FROM}"
            " ORDER BY d.id DESC LIMIT %s",
            (limit,),
        )
        return [alert_rows.delivery(row, _same) for row in found]

    async def replay_delivery(self, delivery_id: int, now: datetime) -> bool:
        found = await self._all(
            "UPDATE alert_deliveries SET status = 'pending', attempts = 0,"
            " next_attempt_at = %s, lease_until = NULL WHERE id = %s RETURNING id",
            (now, delivery_id),
        )
        return bool(found)
