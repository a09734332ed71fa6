"""Alert rows as both stores read them: column lists and mapping to domain values.

Each mapper takes the store's reading of a stored moment (SQLite keeps UTC
microseconds, PostgreSQL gives datetimes).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from voxmeter.domain.alerts import AlertEvent, AlertKind, AlertRule, Delivery, Endpoint, Level

Moment = Callable[[Any], datetime]

EVENT_COLUMNS = (
    "e.seq, e.id, e.kind, e.rule_id, e.operation, e.meter, e.level, e.period,"
    " e.threshold, e.quantity, e.created_at"
)
ENDPOINT_COLUMNS = "w.id, w.url, w.secret, w.previous_secret, w.created_at"
DELIVERY_COLUMNS = (
    "d.id, d.status, d.attempts, d.next_attempt_at, d.last_error, d.delivered_at,"
    f" {EVENT_COLUMNS}, {ENDPOINT_COLUMNS}"
)
DELIVERY_FROM = (
    "alert_deliveries d JOIN alert_events e ON e.seq = d.event_seq"
    " JOIN webhook_endpoints w ON w.id = d.endpoint_id"
)


def rule(row: Sequence[Any], moment: Moment) -> AlertRule:
    rule_id, operation_id, meter, levels, created_at = row
    return AlertRule(
        id=int(rule_id),
        operation_id=None if operation_id is None else int(operation_id),
        meter=str(meter),
        levels=tuple(Level.parse(text) for text in levels.split(",")),
        created_at=moment(created_at),
    )


@functools.lru_cache(maxsize=4096)
def watching_rule(row: tuple[Any, ...], moment: Moment) -> AlertRule:
    """:func:`rule`, remembered: ledger transactions read the same rules batch after batch."""
    return rule(row, moment)


def event(row: Sequence[Any], moment: Moment) -> AlertEvent:
    seq, event_id, kind, rule_id, operation, meter, level, period, threshold, quantity, at = row
    return AlertEvent(
        seq=int(seq),
        id=str(event_id),
        kind=AlertKind(kind),
        rule_id=int(rule_id),
        operation=str(operation),
        meter=str(meter),
        level=str(level),
        period=str(period),
        threshold=int(threshold),
        quantity=int(quantity),
        created_at=moment(at),
    )


def endpoint(row: Sequence[Any], moment: Moment) -> Endpoint:
    endpoint_id, url, secret, previous, created_at = row
    secrets = (str(secret),) if previous is None else (str(secret), str(previous))
    return Endpoint(int(endpoint_id), str(url), secrets, moment(created_at))


def delivery(row: Sequence[Any], moment: Moment) -> Delivery:
    delivery_id, status, attempts, next_at, error, delivered_at = row[:6]
    return Delivery(
        id=int(delivery_id),
        event=event(row[6:17], moment),
        endpoint=endpoint(row[17:22], moment),
        status=str(status),
        attempts=int(attempts),
        next_attempt_at=moment(next_at),
        last_error=None if error is None else str(error),
        delivered_at=None if delivered_at is None else moment(delivered_at),
    )
