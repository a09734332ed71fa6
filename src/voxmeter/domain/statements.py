"""Statements: when a month may close, and what late changes to a closed month owe.

A closed statement never changes. A change that reaches a closed month
afterwards (a late event, a void, an amendment) is billed on the next
statement as adjustment lines: the closed month is re-rated with the price
book version it was closed with, and each meter (and the minimum or cap)
whose amount or quantity differs from what has been billed for that month
so far gets a line for the difference, naming the statement it adjusts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from voxmeter.domain.pricing import (
    ZERO,
    Line,
    LineKind,
    Month,
    PriceSheet,
    usage_lines,
)


def month_end(month: Month, zone: ZoneInfo) -> datetime:
    """The instant ``month`` ends in the operation's time zone."""
    return datetime.combine(month.next().first_day, time(), tzinfo=zone)


def closable(month: Month, zone: ZoneInfo, now: datetime, grace: timedelta) -> bool:
    """Whether late events have had their grace period after the local month end."""
    return now >= month_end(month, zone) + grace


@dataclass(frozen=True, slots=True)
class Billed:
    """What has been billed so far for one key (a meter, or ``minimum``/``cap``) of a month."""

    quantity: Decimal
    amount: Decimal


def billed_key(line: Line) -> str:
    return line.meter or line.kind.value


def adjustment_lines(
    statement_number: int,
    month: Month,
    billed: Mapping[str, Billed],
    quantities: Mapping[str, Decimal],
    sheet: PriceSheet,
) -> list[Line]:
    """The lines that bring a closed month from what was billed to what it comes to now."""
    now = {billed_key(line): line for line in usage_lines(quantities, sheet)}
    lines = []
    for key in sorted(set(now) | set(billed)):
        before = billed.get(key, Billed(ZERO, ZERO))
        line = now.get(key)
        quantity = line.quantity if line is not None and line.meter else ZERO
        amount = line.amount if line is not None else ZERO
        if quantity == before.quantity and amount == before.amount:
            continue
        lines.append(
            Line(
                kind=LineKind.ADJUSTMENT,
                meter=line.meter if line is not None else None,
                quantity=quantity - before.quantity,
                billable=ZERO,
                model=None,
                tiers=(),
                amount=amount - before.amount,
                description=f"adjusts statement {statement_number} ({month}): {key}",
                adjusts={"statement": statement_number, "month": str(month), "item": key},
            )
        )
    return lines
