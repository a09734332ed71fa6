"""Caps, alert rules, crossings, webhooks and the outbox in SQLite.

:func:`guard` runs inside the ledger's write transaction
(``BEGIN IMMEDIATE`` holds SQLite's one write lock), so the month's sums it
reads cannot move under it: two batches cannot both pass a cap, and a
level's crossing is recorded by exactly one of them.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime

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
from voxmeter.domain.clock import utc_micros
from voxmeter.storage import alert_rows
from voxmeter.storage.ports import AlertStore, CapExceeded
from voxmeter.storage.sqlite.connection import SQLitePart, moment


def _guards(db: sqlite3.Connection, operation_id: int, meters: set[str]) -> Guards | None:
    """The caps and rules on these meters of the operation; None when there are none."""
    marks = ",".join("?" * len(meters))
    caps = dict(
        db.execute(
            f"SELECT meter, quantity FROM meter_caps WHERE operation_id = ? AND meter IN ({marks})",
            (operation_id, *meters),
        ).fetchall()
    )
    rules = [
        alert_rows.rule(row, moment)
        for row in db.execute(
            "SELECT id, operation_id, meter, levels, created_at FROM alert_rules"
            f" WHERE meter IN ({marks}) AND (operation_id = ? OR operation_id IS NULL)",
            (*meters, operation_id),
        )
    ]
    return Guards(caps, rules) if caps or rules else None


def guard(
    db: sqlite3.Connection,
    operation_id: int,
    changes: Mapping[tuple[str, date], int],
    now: datetime,
    *,
    capped: bool,
) -> None:
    """Check caps (when ``capped``) and record crossings for a change of summed meters.

    ``changes`` is per (meter, day), not yet applied to the rollups.
    Raises :class:`CapExceeded`, which rolls the transaction back.
    """
    if not changes:
        return
    guards = _guards(db, operation_id, {meter for meter, _ in changes})
    if guards is None:
        return
    watched = guards.watched()
    for (meter, first), delta in sorted(month_deltas(changes).items()):
        if meter not in watched or delta == 0:
            continue
        start, end = month_bounds(first)
        (before,) = db.execute(
            "SELECT coalesce(sum(total), 0) FROM rollups"
            " WHERE operation_id = ? AND meter = ? AND day >= ? AND day < ?",
            (operation_id, meter, start.isoformat(), end.isoformat()),
        ).fetchone()
        after = before + delta
        cap = over_cap(guards, meter, after) if capped else None
        if cap is not None:
            raise CapExceeded(meter, cap, before, after)
        for crossing in crossings(guards, meter, period_of(first), before, after):
            key = (crossing.rule_id, operation_id, crossing.level, crossing.period)
            if crossing.kind is AlertKind.CROSSED:
                changed = db.execute(
                    "INSERT INTO alert_crossings (rule_id, operation_id, level, period,"
                    " crossed_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (*key, utc_micros(now)),
                ).rowcount
            else:
                changed = db.execute(
                    "DELETE FROM alert_crossings WHERE rule_id = ? AND operation_id = ?"
                    " AND level = ? AND period = ?",
                    key,
                ).rowcount
            if not changed:
                continue
            (seq,) = db.execute(
                "INSERT INTO alert_events (id, kind, rule_id, operation_id, operation, meter,"
                " level, period, threshold, quantity, created_at)"
                " SELECT ?, ?, ?, id, name, ?, ?, ?, ?, ?, ? FROM operations WHERE id = ?"
                " RETURNING seq",
                (
                    f"msg_{uuid.uuid4().hex}",
                    crossing.kind.value,
                    crossing.rule_id,
                    meter,
                    crossing.level,
                    crossing.period,
                    crossing.threshold,
                    crossing.quantity,
                    utc_micros(now),
                    operation_id,
                ),
            ).fetchone()
            db.execute(
                "INSERT INTO alert_deliveries (event_seq, endpoint_id, status,"
                " next_attempt_at) SELECT ?, id, 'pending', ? FROM webhook_endpoints",
                (seq, utc_micros(now)),
            )


class SQLiteAlerts(SQLitePart, AlertStore):
    # -- caps and rules --------------------------------------------------------

    async def set_cap(self, operation_id: int, meter: str, quantity: int) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO meter_caps (operation_id, meter, quantity) VALUES (?, ?, ?)"
                " ON CONFLICT (operation_id, meter) DO UPDATE SET quantity = excluded.quantity",
                (operation_id, meter, quantity),
            )

    async def clear_cap(self, operation_id: int, meter: str) -> bool:
        with self._write() as db:
            return (
                db.execute(
                    "DELETE FROM meter_caps WHERE operation_id = ? AND meter = ?",
                    (operation_id, meter),
                ).rowcount
                > 0
            )

    async def list_caps(self) -> list[MeterCap]:
        found = self._db.execute(
            "SELECT operation_id, meter, quantity FROM meter_caps ORDER BY operation_id, meter"
        )
        return [MeterCap(*row) for row in found]

    async def add_rule(
        self, operation_id: int | None, meter: str, levels: Sequence[Level], now: datetime
    ) -> AlertRule:
        with self._write() as db:
            row = db.execute(
                "INSERT INTO alert_rules (operation_id, meter, levels, created_at)"
                " VALUES (?, ?, ?, ?) RETURNING id, operation_id, meter, levels, created_at",
                (operation_id, meter, ",".join(str(level) for level in levels), utc_micros(now)),
            ).fetchone()
        return alert_rows.rule(row, moment)

    async def list_rules(self) -> list[AlertRule]:
        found = self._db.execute(
            "SELECT id, operation_id, meter, levels, created_at FROM alert_rules ORDER BY id"
        )
        return [alert_rows.rule(row, moment) for row in found]

    async def alert_events(self, limit: int) -> list[AlertEvent]:
        found = self._db.execute(
            f"SELECT {alert_rows.EVENT_COLUMNS} FROM alert_events e ORDER BY e.seq DESC LIMIT ?",
            (limit,),
        )
        return [alert_rows.event(row, moment) for row in found]

    # -- webhooks and deliveries -----------------------------------------------

    async def add_endpoint(self, url: str, secret: str, now: datetime) -> Endpoint:
        with self._write() as db:
            row = db.execute(
                "INSERT INTO webhook_endpoints (url, secret, created_at) VALUES (?, ?, ?)"
                " RETURNING id, url, secret, previous_secret, created_at",
                (url, secret, utc_micros(now)),
            ).fetchone()
        return alert_rows.endpoint(row, moment)

    async def list_endpoints(self) -> list[Endpoint]:
        found = self._db.execute(
            f"SELECT {alert_rows.ENDPOINT_COLUMNS} FROM webhook_endpoints w ORDER BY id"
        )
        return [alert_rows.endpoint(row, moment) for row in found]

    async def rotate_endpoint(self, endpoint_id: int, secret: str) -> bool:
        with self._write() as db:
            return (
                db.execute(
                    "UPDATE webhook_endpoints SET previous_secret = secret, secret = ?"
                    " WHERE id = ?",
                    (secret, endpoint_id),
                ).rowcount
                > 0
            )

    async def claim_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Delivery]:
        with self._write() as db:
            claimed = [
                seq
                for (seq,) in db.execute(
                    "UPDATE alert_deliveries SET lease_until = ? WHERE id IN ("
                    " SELECT id FROM alert_deliveries WHERE status = 'pending'"
                    " AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
                    " ORDER BY next_attempt_at LIMIT ?) RETURNING id",
                    (utc_micros(lease_until), utc_micros(now), utc_micros(now), limit),
                ).fetchall()
            ]
        if not claimed:
            return []
        marks = ",".join("?" * len(claimed))
        found = self._db.execute(
            f"SELECT {alert_rows.DELIVERY_COLUMNS} FROM {alert_rows.DELIVERY_FROM}"
            f" WHERE d.id IN ({marks})"
            " ORDER BY d.id",
            claimed,
        )
        return [alert_rows.delivery(row, moment) for row in found]

    async def finish_delivery(
        self,
        delivery_id: int,
        *,
        status: str,
        error: str | None,
        next_attempt_at: datetime,
        now: datetime,
    ) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE alert_deliveries SET status = ?, attempts = attempts + 1,"
                " last_error = ?, next_attempt_at = ?, lease_until = NULL,"
                " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END"
                " WHERE id = ?",
                (
                    status,
                    error,
                    utc_micros(next_attempt_at),
                    status,
                    utc_micros(now),
                    delivery_id,
                ),
            )

    async def list_deliveries(self, limit: int) -> list[Delivery]:
        found = self._db.execute(
            f"SELECT {alert_rows.DELIVERY_COLUMNS} FROM {alert_rows.DELIVERY_FROM}"
            " ORDER BY d.id DESC LIMIT ?",
            (limit,),
        )
        return [alert_rows.delivery(row, moment) for row in found]

    async def replay_delivery(self, delivery_id: int, now: datetime) -> bool:
        with self._write() as db:
            return (
                db.execute(
                    "UPDATE alert_deliveries SET status = 'pending', attempts = 0,"
                    " next_attempt_at = ?, lease_until = NULL WHERE id = ?",
                    (utc_micros(now), delivery_id),
                ).rowcount
                > 0
            )
