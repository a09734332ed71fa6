"""Usage into the ledger and out of it: record, correct, list.

A batch is all or nothing: it is refused whole when any event is invalid or
reuses an id for a different payload, and then nothing is stored and the
reasons go to the operation's rejection log. The steps are separate methods
because the HTTP path admits the call (quota, slot) between validating and
storing; :meth:`UsageService.record` and :meth:`UsageService.correct` chain
them for every other caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from voxmeter.config import Settings
from voxmeter.contract import errors
from voxmeter.contract.meters import billing_meter
from voxmeter.contract.quantities import format_items
from voxmeter.domain.clock import Clock
from voxmeter.domain.models import (
    Correction,
    CorrectionResult,
    LedgerEntry,
    LedgerEvent,
    Operation,
    RecordOutcome,
    Rejection,
    RejectionRecord,
)
from voxmeter.domain.usage import (
    EventError,
    Window,
    parse_correction,
    scaled_correction,
    validate_batch,
)
from voxmeter.services.metrics import EVENTS
from voxmeter.storage.base import Store
from voxmeter.storage.ports import CapExceeded

CONFLICT_REASON = "id already used for a different event"
# What the rejection debugger keeps of a refused batch as sent: the first
# events of it, each cut short, so a flood of huge bad batches stays small.
PAYLOADS_KEPT_PER_BATCH = 100
PAYLOAD_BYTES_KEPT = 2048


NOT_KEPT_TOO_DEEP = "(not kept: nested deeper than JSON can be written back)"


def kept_payload(raw: object) -> str:
    """``raw`` as JSON, cut to at most the bytes kept (never inside a character)."""
    try:
        text = orjson.dumps(raw, default=str)
    except orjson.JSONEncodeError:
        # Refused for its depth in the first place: say so rather than fail the refusal.
        return NOT_KEPT_TOO_DEEP
    if len(text) <= PAYLOAD_BYTES_KEPT:
        return text.decode()
    return text[: PAYLOAD_BYTES_KEPT - 3].decode(errors="ignore") + "..."


class UsageService:
    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    def window(self, operation: Operation, now: datetime) -> Window:
        """The instants an event of ``operation`` may carry when received at ``now``."""
        return Window.open_month(
            operation,
            now,
            grace=self._settings.previous_month_grace,
            skew=self._settings.future_skew,
        )

    # -- recording -------------------------------------------------------------

    async def validate(
        self, operation: Operation, raws: Sequence[object], now: datetime
    ) -> list[LedgerEvent]:
        """Every event checked; 400 naming each bad one (logged) if any is invalid."""
        events, rejected = self.check(operation, raws, now)
        if rejected:
            raise await self.refuse_invalid(operation, rejected, now, sent=raws)
        return events

    def check(
        self, operation: Operation, raws: Sequence[object], now: datetime
    ) -> tuple[list[LedgerEvent], list[Rejection]]:
        """Every event checked, nothing logged: the valid events and why the others are not.

        For a caller that admits the call before an invalid batch is logged,
        so that logging it costs the caller a call.
        """
        return validate_batch(raws, operation, self.window(operation, now))

    async def refuse_invalid(
        self,
        operation: Operation,
        rejected: list[Rejection],
        now: datetime,
        sent: Sequence[object] = (),
    ) -> errors.ApiError:
        """400 naming each invalid event, logged as refused (with what was ``sent``)."""
        return await self._refuse(operation, 400, errors.EVENTS_INVALID, rejected, now, sent)

    async def store(
        self, operation: Operation, events: Sequence[LedgerEvent], now: datetime
    ) -> RecordOutcome:
        """Store a validated batch whole; 409 (logged) if an id was used for another event."""
        self._ensure_room()
        try:
            outcome = await self._store.record_events(operation.id, events, now)
        except CapExceeded as exc:
            raise await self._refuse_over_cap(operation, events, exc, now) from None
        if outcome.conflicts:
            conflicts = [
                Rejection(i, events[i].event_id, CONFLICT_REASON) for i in outcome.conflicts
            ]
            raise await self._refuse(operation, 409, errors.EVENT_ID_CONFLICT, conflicts, now)
        EVENTS.labels("accepted").inc(len(outcome.accepted))
        EVENTS.labels("duplicate").inc(len(outcome.duplicates))
        return outcome

    async def _refuse_over_cap(
        self, operation: Operation, events: Sequence[LedgerEvent], exc: CapExceeded, now: datetime
    ) -> errors.ApiError:
        """403 naming the cap, each event of its meter logged as refused for it."""
        meter = billing_meter(exc.meter)
        scale = meter.kind.scale if meter else 0
        cap, would_be = format_items(exc.cap, scale), format_items(exc.would_be, scale)
        reason = f"the batch would take {exc.meter} to {would_be} this month, past its cap of {cap}"
        over = [
            Rejection(i, e.event_id, reason) for i, e in enumerate(events) if e.meter == exc.meter
        ]
        return await self._refuse(
            operation, 403, errors.CAP_EXCEEDED.format(meter=exc.meter, cap=cap), over, now
        )

    async def record(self, operation: Operation, raws: Sequence[object]) -> RecordOutcome:
        """Validate and store a batch of raw (decoded JSON) events."""
        now = self._clock()
        return await self.store(operation, await self.validate(operation, raws, now), now)

    def _has_room(self) -> bool:
        free = self._store.free_disk_bytes()
        return free is None or free >= self._settings.min_free_disk_bytes

    def _ensure_room(self) -> None:
        """507 before any write once free space is down to the reserve.

        The reserve keeps room for what reports still write (their call
        counts), so reads are served while uploads cannot be stored.
        """
        if not self._has_room():
            raise errors.ApiError(507, errors.STORAGE_FULL)

    async def _refuse(
        self,
        operation: Operation,
        status: int,
        msg: str,
        rejected: list[Rejection],
        now: datetime,
        sent: Sequence[object] = (),
    ) -> errors.ApiError:
        """Log why the events did not count, and the refusal that says so.

        With the batch as ``sent``, a bounded copy of the refused events too.
        """
        EVENTS.labels("rejected").inc(len(rejected))
        if self._has_room():
            await self._store.log_rejections(
                operation.id,
                rejected,
                now,
                keep_per_operation=self._settings.max_rejections_per_operation,
                keep=self._settings.max_rejections,
            )
            payloads = [
                (r.index, kept_payload(sent[r.index]))
                for r in rejected[:PAYLOADS_KEPT_PER_BATCH]
                if r.index < len(sent)
            ]
            if payloads:
                await self._store.keep_refused_payloads(operation.id, payloads, now)
        return errors.ApiError(
            status,
            msg,
            [{"index": r.index, "id": r.event_id, "reason": r.reason} for r in rejected],
        )

    # -- corrections -----------------------------------------------------------

    async def plan_corrections(
        self, operation: Operation, raws: Sequence[object]
    ) -> list[Correction]:
        """The corrections asked, each scaled to its event's meter.

        400 naming each malformed one; 404 naming each event not in the ledger.
        """
        asked, invalid = [], []
        for index, raw in enumerate(raws):
            try:
                asked.append(parse_correction(raw))
            except EventError as exc:
                invalid.append({"index": index, "reason": str(exc)})
        if invalid:
            raise errors.ApiError(400, errors.EVENTS_INVALID, invalid)
        meters = await self._store.event_meters(operation.id, [a.event_id for a in asked])
        unknown = [
            {"index": i, "id": a.event_id} for i, a in enumerate(asked) if a.event_id not in meters
        ]
        if unknown:
            raise errors.ApiError(404, errors.EVENTS_UNKNOWN, unknown)
        corrections = []
        for index, request in enumerate(asked):
            try:
                corrections.append(scaled_correction(request, meters[request.event_id]))
            except EventError as exc:
                invalid.append({"index": index, "id": request.event_id, "reason": str(exc)})
        if invalid:
            raise errors.ApiError(400, errors.EVENTS_INVALID, invalid)
        return corrections

    async def apply_corrections(
        self, operation: Operation, corrections: Sequence[Correction]
    ) -> list[CorrectionResult]:
        """Append the corrections, all or none; the originals stay in the ledger."""
        self._ensure_room()
        return await self._store.correct_events(operation.id, corrections, self._clock())

    async def correct(self, operation: Operation, raws: Sequence[object]) -> list[CorrectionResult]:
        return await self.apply_corrections(operation, await self.plan_corrections(operation, raws))

    # -- reading ---------------------------------------------------------------

    async def events(
        self,
        operation: Operation,
        limit: int,
        *,
        meter: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        event_id: str | None = None,
    ) -> list[LedgerEntry]:
        """The latest accepted events, newest first, as they count now (filtered when asked)."""
        return await self._store.recent_events(
            operation.id, limit, meter=meter, since=since, until=until, event_id=event_id
        )

    async def rejections(self, operation: Operation, limit: int) -> list[RejectionRecord]:
        """The latest refused events, newest first, with why."""
        return await self._store.recent_rejections(operation.id, limit)

    async def dropped_rejections(self, operation: Operation) -> int:
        """How many refused events were dropped from the log, oldest first, to bound it."""
        return await self._store.dropped_rejections(operation.id)

    async def refused_payloads(
        self, operation: Operation, rejections: Sequence[RejectionRecord]
    ) -> dict[tuple[datetime, int], str]:
        """What was sent of these refused events, where kept, by (arrival, position)."""
        if not rejections:
            return {}
        since = min(r.received_at for r in rejections)
        return await self._store.refused_payloads(operation.id, since, len(rejections))
