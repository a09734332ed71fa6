"""Hard caps and alert rules on a meter's month-to-date quantity: plain values and arithmetic.

A cap is a scaled quantity a meter's month-to-date sum may reach but not
pass. A rule has one or more levels, each an absolute scaled quantity or a
percentage of the operation's cap on that meter; a level is crossed when a
change takes the month's sum from below it to at or above it, and re-armed
when a correction takes the sum back below it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta


class AlertKind(enum.StrEnum):
    CROSSED = "crossed"
    REARMED = "rearmed"


@dataclass(frozen=True, slots=True)
class Level:
    """``value`` scaled units, or ``value`` percent of the cap when ``percent``."""

    value: int
    percent: bool = False

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)

    @classmethod
    def parse(cls, text: str) -> Level:
        """A level as stored: ``"800"`` (scaled units) or ``"80%"``."""
        if text.endswith("%"):
            return cls(int(text[:-1]), percent=True)
        return cls(int(text))

    def threshold(self, cap: int | None) -> int | None:
        """The scaled quantity this level stands for (None: a percentage with no cap)."""
        if not self.percent:
            return self.value
        if cap is None:
            return None
        return -(-cap * self.value // 100)  # rounded up: 80 % of 5 is reached at 4


@dataclass(frozen=True, slots=True)
class MeterCap:
    operation_id: int
    meter: str
    quantity: int


@dataclass(frozen=True, slots=True)
class AlertRule:
    """Levels on ``meter``'s month-to-date sum, for one operation or (None) every one."""

    id: int
    operation_id: int | None
    meter: str
    levels: tuple[Level, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Guards:
    """The caps and rules that watch one operation's meters, read in the ledger's transaction."""

    caps: Mapping[str, int]
    rules: Sequence[AlertRule]

    def watched(self) -> set[str]:
        return set(self.caps) | {rule.meter for rule in self.rules}


@dataclass(frozen=True, slots=True)
class Crossing:
    """A level a change crossed (or re-armed), to record once for its period."""

    rule_id: int
    level: str
    period: str
    meter: str
    threshold: int
    quantity: int
    kind: AlertKind


def period_of(day: date) -> str:
    """The monthly period ``day`` falls in, as crossings are keyed: ``2026-11``."""
    return f"{day:%Y-%m}"


def month_bounds(day: date) -> tuple[date, date]:
    """The first day of ``day``'s month and the first day of the next."""
    first = day.replace(day=1)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following


def month_deltas(changes: Mapping[tuple[str, date], int]) -> dict[tuple[str, date], int]:
    """Per-(meter, day) changes of a summed meter, added up per (meter, first day of month)."""
    deltas: dict[tuple[str, date], int] = {}
    for (meter, day), change in changes.items():
        key = (meter, day.replace(day=1))
        deltas[key] = deltas.get(key, 0) + change
    return deltas


def over_cap(guards: Guards, meter: str, after: int) -> int | None:
    """The cap ``after`` would pass, or None."""
    cap = guards.caps.get(meter)
    return cap if cap is not None and after > cap else None


def crossings(
    guards: Guards, meter: str, period: str, before: int, after: int
) -> Iterable[Crossing]:
    """Each level of each rule on ``meter`` the change from ``before`` to ``after`` crossed.

    Upwards a level is ``CROSSED``; downwards ``REARMED`` (the store records
    a re-arm only for a level it had recorded as crossed).
    """
    cap = guards.caps.get(meter)
    for rule in guards.rules:
        if rule.meter != meter:
            continue
        for level in rule.levels:
            threshold = level.threshold(cap)
            if threshold is None:
                continue
            if before < threshold <= after:
                kind = AlertKind.CROSSED
            elif after < threshold <= before:
                kind = AlertKind.REARMED
            else:
                continue
            yield Crossing(rule.id, str(level), period, meter, threshold, after, kind)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert recorded in the outbox: what every endpoint is sent."""

    seq: int
    id: str
    kind: AlertKind
    rule_id: int
    operation: str
    meter: str
    level: str
    period: str
    threshold: int
    quantity: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A webhook receiver; its secrets sign, and are never shown after creation."""

    id: int
    url: str
    secrets: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert's delivery to one endpoint."""

    id: int
    event: AlertEvent
    endpoint: Endpoint
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None
