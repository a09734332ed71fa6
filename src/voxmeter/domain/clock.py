"""Time source, injectable so tests can move across midnights and months."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware instant (integer arithmetic, exact).

    Cheaper than dividing timedeltas, which matters once per ingested event.
    """
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
