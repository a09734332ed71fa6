"""Validation of incoming usage events, before anything reaches the ledger."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from voxmeter.config import Settings
from voxmeter.contract.meters import billing_meter
from voxmeter.contract.quantities import QuantityError, to_scaled
from voxmeter.metering.models import Action, Correction, LedgerEvent, Operation, Rejection

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


def printable(text: str) -> str:
    """``text`` with control characters escaped, safe to store and to show."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def validate_batch(
    raws: Sequence[object], operation: Operation, window: Window
) -> tuple[list[LedgerEvent], list[Rejection]]:
    """Every event validated; any rejection means the caller stores none of them."""
    events: list[LedgerEvent] = []
    rejections: list[Rejection] = []
    for index, raw in enumerate(raws):
        try:
            events.append(validate_event(raw, operation, window))
        except EventError as exc:
            rejections.append(Rejection(index, _claimed_id(raw), printable(str(exc))))
    return events, rejections


def _claimed_id(raw: object) -> str | None:
    """The id a refused event claims, if it is a sane string, for the operator's log."""
    if isinstance(raw, Mapping):
        event_id = raw.get("id")
        if isinstance(event_id, str) and 0 < len(event_id) <= MAX_ID_LENGTH:
            return printable(event_id)
    return None


@dataclass(frozen=True, slots=True)
class CorrectionRequest:
    """A correction as asked, before its quantity is scaled to the event's meter."""

    event_id: str
    action: Action
    quantity: object
    reason: str


MAX_REASON_LENGTH = 500


def parse_correction(raw: object) -> CorrectionRequest:
    if not isinstance(raw, Mapping):
        raise EventError("correction must be a JSON object")
    unknown = set(raw) - {"id", "action", "quantity", "reason"}
    if unknown:
        raise EventError(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_LENGTH:
        raise EventError("id must be the id of an accepted event")
    action_name = raw.get("action")
    if action_name not in (Action.VOID.value, Action.AMEND.value):
        raise EventError("action must be 'void' or 'amend'")
    action = Action(action_name)
    if action is Action.AMEND and "quantity" not in raw:
        raise EventError("an amend needs the new quantity")
    if action is Action.VOID and "quantity" in raw:
        raise EventError("a void takes no quantity")
    reason = raw.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
        raise EventError(f"reason must be a string of at most {MAX_REASON_LENGTH} characters")
    return CorrectionRequest(event_id, action, raw.get("quantity"), reason)


def scaled_correction(request: CorrectionRequest, meter_name: str) -> Correction:
    """The correction with its quantity exact at the event's meter's scale."""
    if request.action is Action.VOID:
        return Correction(request.event_id, Action.VOID, None, request.reason)
    meter = billing_meter(meter_name)
    assert meter is not None
    try:
        quantity = to_scaled(request.quantity, meter.kind.scale)
    except QuantityError as exc:
        raise EventError(str(exc)) from None
    if quantity < 0:
        raise EventError("quantity must not be negative; void the event instead")
    return Correction(request.event_id, Action.AMEND, quantity, request.reason)
