"""Validation of incoming usage events, before anything reaches the ledger."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import orjson

from voxmeter.contract.meters import billing_meter
from voxmeter.contract.quantities import MAX_SCALED, QuantityError, to_scaled
from voxmeter.domain.clock import utc_micros
from voxmeter.domain.models import Action, Correction, LedgerEvent, Operation, Rejection

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
    def open_month(
        cls, operation: Operation, now: datetime, *, grace: timedelta, skew: timedelta
    ) -> Window:
        """From ``grace`` before the month's local start to ``skew`` after ``now``."""
        local_now = now.astimezone(operation.zone)
        month_start = local_now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return cls(earliest=month_start - grace, latest=now + skew)


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


def _fingerprint(meter: str, quantity: int, micros: int, attributes: str | None) -> bytes:
    return hashlib.sha256(orjson.dumps((meter, quantity, micros, attributes))).digest()


def fingerprint(meter: str, quantity: int, moment: datetime, attributes: str | None) -> bytes:
    """Identifies an event's payload, so a resend is told from a reuse of its id.

    The instant counts, not how it was written: ``10:00-05:00`` and ``15:00Z``
    are the same event.
    """
    return _fingerprint(meter, quantity, utc_micros(moment), attributes)


_FIELDS = frozenset({"id", "meter", "quantity", "time", "attributes"})


class EventValidator:
    """Validates raw events for one operation against one window.

    One validator serves a whole batch and remembers each distinct ``time``
    string it has parsed (with its instant and local day): events of a batch
    often share timestamps, and this is the costly part of an event. Whole
    quantities take an integer path; only decimals go through ``Decimal``.
    """

    def __init__(self, operation: Operation, window: Window) -> None:
        self._zone = operation.zone
        self._window = window
        self._times: dict[str, tuple[datetime, int, date]] = {}

    def __call__(self, raw: object) -> LedgerEvent:
        """A ledger event from one decoded JSON event, or :class:`EventError`."""
        if not isinstance(raw, dict):
            raise EventError("event must be a JSON object")
        if not raw.keys() <= _FIELDS:
            unknown = set(raw) - _FIELDS
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
        quantity = self._quantity(raw["quantity"], meter.kind.scale)

        moment, micros, day = self._time(raw.get("time"))
        attributes = _attributes(raw.get("attributes"))
        return LedgerEvent(
            event_id=event_id,
            meter=meter.api,
            quantity=quantity,
            occurred_at=moment,
            day=day,
            attributes=attributes,
            fingerprint=_fingerprint(meter.api, quantity, micros, attributes),
        )

    @staticmethod
    def _quantity(value: object, scale: int) -> int:
        factor: int = 10**scale
        if type(value) is int and 0 <= value <= MAX_SCALED // factor:
            return value * factor
        try:
            quantity = to_scaled(value, scale)
        except QuantityError as exc:
            raise EventError(str(exc)) from None
        if quantity < 0:
            raise EventError("quantity must not be negative; send a correction instead")
        return quantity

    def _time(self, value: object) -> tuple[datetime, int, date]:
        known = self._times.get(value) if isinstance(value, str) else None
        if known is not None:
            return known
        moment = parse_time(value)
        if moment < self._window.earliest:
            raise EventError("time is before the operation's open month")
        if moment > self._window.latest:
            raise EventError("time is in the future")
        known = (moment, utc_micros(moment), moment.astimezone(self._zone).date())
        self._times[value] = known  # type: ignore[index]  # parse_time took only a str
        return known


def validate_event(raw: object, operation: Operation, window: Window) -> LedgerEvent:
    """A ledger event from one decoded JSON event, or :class:`EventError`."""
    return EventValidator(operation, window)(raw)


def _attributes(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise EventError("attributes must be a JSON object")
    try:
        encoded = orjson.dumps(value, default=_attribute_number, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        raise EventError("attributes are nested too deeply") from None
    text = encoded.decode()
    if len(text) > MAX_ATTRIBUTES_BYTES:
        raise EventError(f"attributes are larger than {MAX_ATTRIBUTES_BYTES} bytes")
    return text


def _attribute_number(value: object) -> float:
    """Numbers in attributes (decoded as Decimal) stored as they always were: as floats.

    Attributes are descriptive, not billed; keeping their encoding keeps the
    fingerprints of events already stored.
    """
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def printable(text: str) -> str:
    """``text`` with control characters escaped, safe to store and to show."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def validate_batch(
    raws: Sequence[object], operation: Operation, window: Window
) -> tuple[list[LedgerEvent], list[Rejection]]:
    """Every event validated; any rejection means the caller stores none of them."""
    validate = EventValidator(operation, window)
    events: list[LedgerEvent] = []
    rejections: list[Rejection] = []
    for index, raw in enumerate(raws):
        try:
            events.append(validate(raw))
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
