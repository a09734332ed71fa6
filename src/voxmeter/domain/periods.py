"""The days a report covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Period:
    """The days a report covers, inclusive, and the day it is asked on."""

    first: date
    last: date
    today: date

    @classmethod
    def month_to_date(cls, today: date) -> Period:
        return cls(first=today.replace(day=1), last=today, today=today)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1
