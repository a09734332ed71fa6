"""Validation of incoming usage events, before anything reaches the ledger."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from voxmeter.config import Settings
from voxmeter.contract.meters import billing_meter
from voxmeter.contract.quantities import QuantityError, to_scaled
from voxmeter.metering.models import LedgerEvent, Operation

MAX_ID_LENGTH = 128
MAX_ATTRIBUTES_BYTES = 4096


class EventError(ValueError):
    """Why one event cannot be accepted; the message is shown to the sender."""


@dataclass(frozen=True, slots=True)
class Window:
    """The instants an event may carry: the operation's open month, give or take."""

    earliest: datetime
    latest: datetime

    @classmethod
    def open_month(cls, operation: Operation, now: datetime, settings: Settings) -> Window:
        local_now = now.astimezone(operation.zone)
        month_start = local_now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        grace = timedelta(hours=settings.previous_month_grace_hours)
        return cls(
            earliest=month_start - grace,
            latest=now + timedelta(seconds=settings.future_skew_seconds),
        )


def parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise EventError("time must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise EventError("time is not a valid ISO 8601 date-time") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise EventError("time must carry an explicit UTC offset (for example Z or -05:00)")
    return moment


def fingerprint(meter: str, quantity: int, moment: datetime, attributes: str | None) -> bytes:
    """Identifies an event's payload, so a resend is told from a reuse of its id."""
    canonical = orjson.dumps([meter, quantity, moment.isoformat(), attributes])
    return hashlib.sha256(canonical).digest()


def validate_event(raw: object, operation: Operation, window: Window) -> LedgerEvent:
    """A ledger event from one decoded JSON event, or :class:`EventError`."""
    if not isinstance(raw, Mapping):
        raise EventError("event must be a JSON object")
    unknown = set(raw) - {"id", "meter", "quantity", "time", "attributes"}
    if unknown:
        raise EventError(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")

    event_id = raw.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise EventError("id must be a non-empty string")
    if len(event_id) > MAX_ID_LENGTH:
        raise EventError(f"id is longer than {MAX_ID_LENGTH} characters")
    if not event_id.isprintable():
        raise EventError("id contains control characters")

    meter_name = raw.get("meter")
    meter = billing_meter(meter_name) if isinstance(meter_name, str) else None
    if meter is None:
        raise EventError(f"unknown meter {meter_name!r}")

    if "quantity" not in raw:
        raise EventError("quantity is required")
    try:
        quantity = to_scaled(raw["quantity"], meter.kind.scale)
    except QuantityError as exc:
        raise EventError(str(exc)) from None
    if quantity < 0:
        raise EventError("quantity must not be negative; send a correction instead")

    moment = parse_time(raw.get("time"))
    if moment < window.earliest:
        raise EventError("time is before the operation's open month")
    if moment > window.latest:
        raise EventError("time is in the future")

    attributes = _attributes(raw.get("attributes"))
    return LedgerEvent(
        event_id=event_id,
        meter=meter.api,
        quantity=quantity,
        occurred_at=moment,
        day=operation.local_date(moment),
        attributes=attributes,
        fingerprint=fingerprint(meter.api, quantity, moment, attributes),
    )


def _attributes(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise EventError("attributes must be a JSON object")
    encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if len(encoded) > MAX_ATTRIBUTES_BYTES:
        raise EventError(f"attributes are larger than {MAX_ATTRIBUTES_BYTES} bytes")
    return encoded


def as_event(
    event_id: str, meter: str, quantity: Any, time: datetime, attributes: Any = None
) -> dict[str, Any]:
    """The wire form of an event, for callers that build one in Python."""
    event: dict[str, Any] = {
        "id": event_id,
        "meter": meter,
        "quantity": quantity,
        "time": time.isoformat(),
    }
    if attributes is not None:
        event["attributes"] = attributes
    return event
