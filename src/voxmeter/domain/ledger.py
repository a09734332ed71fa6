"""Backend-neutral ledger arithmetic: sorting a batch out, folding it into rollups."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Generic, TypeVar

from voxmeter.contract.meters import GAUGE_METERS
from voxmeter.domain.models import (
    Action,
    Correction,
    CorrectionResult,
    Discrepancy,
    LedgerEvent,
    RecordOutcome,
)

DayFigures = tuple[int, int | None]
"""A (meter, day)'s sum and, for a gauge, its last value that day."""


def classify(
    events: Sequence[LedgerEvent], stored: Mapping[str, bytes]
) -> tuple[RecordOutcome, list[LedgerEvent]]:
    """Sort a batch against the fingerprints already stored under its ids.

    Returns the outcome and the events to insert. An id seen earlier in the
    same batch counts as stored, so a batch cannot conflict with itself
    unnoticed. When there is any conflict the caller stores nothing.
    """
    outcome = RecordOutcome()
    seen = dict(stored)
    fresh: list[LedgerEvent] = []
    for index, event in enumerate(events):
        known = seen.get(event.event_id)
        if known is None:
            seen[event.event_id] = event.fingerprint
            fresh.append(event)
            outcome.accepted.append(index)
        elif known == event.fingerprint:
            outcome.duplicates.append(index)
        else:
            outcome.conflicts.append(index)
    return outcome, fresh


@dataclass(slots=True)
class RollupChange:
    """What a batch adds to one (meter, day) rollup row."""

    total: int = 0
    gauge_value: int | None = None
    gauge_at: datetime | None = None


def fold(
    events: Sequence[LedgerEvent], gauges: frozenset[str]
) -> dict[tuple[str, date], RollupChange]:
    """Per (meter, day): the sum, and for gauges the latest value.

    Among gauge events at the same instant the later one in the batch wins,
    matching the ledger's insertion order.
    """
    changes: dict[tuple[str, date], RollupChange] = {}
    for event in events:
        change = changes.setdefault((event.meter, event.day), RollupChange())
        if event.meter in gauges:
            if change.gauge_at is None or event.occurred_at >= change.gauge_at:
                change.gauge_value = event.quantity
                change.gauge_at = event.occurred_at
        else:
            change.total += event.quantity
    return changes


def last_gauge_values(
    rows: Iterable[tuple[str, date, int]],
) -> dict[tuple[str, date], int]:
    """The last value per (meter, day) of rows already ordered by time within each day."""
    last: dict[tuple[str, date], int] = {}
    for meter, day, value in rows:
        last[(meter, day)] = value
    return last


def discrepancies(
    ledger: Mapping[tuple[str, date], DayFigures],
    rollups: Mapping[tuple[str, date], DayFigures],
) -> list[Discrepancy]:
    """Every (meter, day) where the rollups disagree with the ledger.

    A rollup row of zero with no gauge equals no row at all (an event voided
    after it was counted leaves such a row).
    """
    empty: DayFigures = (0, None)
    found = []
    for meter, day in sorted(set(ledger) | set(rollups)):
        expected = ledger.get((meter, day), empty)
        held = rollups.get((meter, day), empty)
        if expected != held:
            found.append(Discrepancy(meter=meter, day=day, rollup=held, ledger=expected))
    return found


Day = TypeVar("Day", bound=Hashable)
EventState = tuple[str, Day, int | None]
"""An event's meter, its day, and the quantity it counts now (None once voided)."""


@dataclass(slots=True)
class CorrectionPlan(Generic[Day]):
    """What a batch of corrections does, worked out before anything is written."""

    results: list[CorrectionResult]
    appended: list[tuple[Correction, int | None]]  # each correction and the quantity it sets
    counter_deltas: dict[tuple[str, Day], int]
    gauge_days: set[tuple[str, Day]]

    @property
    def unknown(self) -> bool:
        return CorrectionResult.UNKNOWN in self.results


def plan_corrections(
    corrections: Sequence[Correction], states: Mapping[str, EventState[Day]]
) -> CorrectionPlan[Day]:
    """Apply corrections in order to the events' states; the store writes the plan.

    With any unknown event nothing is planned: unknown ones are ``UNKNOWN``,
    the rest ``UNCHANGED``. A correction to the state an event is already in
    is ``UNCHANGED`` and appends nothing, so retries are harmless.
    """
    plan: CorrectionPlan[Day] = CorrectionPlan([], [], {}, set())
    if any(c.event_id not in states for c in corrections):
        plan.results = [
            CorrectionResult.UNCHANGED if c.event_id in states else CorrectionResult.UNKNOWN
            for c in corrections
        ]
        return plan
    current = dict(states)
    for correction in corrections:
        meter, day, counted = current[correction.event_id]
        wanted = None if correction.action is Action.VOID else correction.quantity
        if wanted == counted:
            plan.results.append(CorrectionResult.UNCHANGED)
            continue
        plan.appended.append((correction, wanted))
        if meter in GAUGE_METERS:
            plan.gauge_days.add((meter, day))
        else:
            key = (meter, day)
            plan.counter_deltas[key] = (
                plan.counter_deltas.get(key, 0) + (wanted or 0) - (counted or 0)
            )
        current[correction.event_id] = (meter, day, wanted)
        plan.results.append(CorrectionResult.APPLIED)
    return plan
