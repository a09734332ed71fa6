"""Figures for the billing and information endpoints, computed from the rollups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from voxmeter.contract.meters import Meter
from voxmeter.contract.quantities import format_items
from voxmeter.contract.services import services_record
from voxmeter.metering.limits import Usage
from voxmeter.metering.models import Operation, Token
from voxmeter.storage.base import Store


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


async def figure(store: Store, operation: Operation, meter: Meter, period: Period) -> str:
    """``items`` over the period: the sum for consumption, the gauge as of its last day."""
    if meter.kind.is_summed:
        scaled = await store.summed_total(operation.id, meter.api, period.first, period.last)
    else:
        scaled = await store.gauge_value(operation.id, meter.api, period.last) or 0
    return format_items(scaled, meter.kind.scale)


async def billing_rows(
    store: Store, operation: Operation, meter: Meter, period: Period
) -> list[dict[str, str]]:
    """The seed's single row: operation, description, items, date (the query date)."""
    return [
        {
            "operation": operation.name,
            "description": meter.description,
            "items": await figure(store, operation, meter, period),
            "date": meter.date_format.render(period.today),
        }
    ]


async def daily_rows(
    store: Store, operation: Operation, meter: Meter, period: Period
) -> list[dict[str, str]]:
    """One row per day of the period: that day's sum, or the gauge as of that day."""
    by_day = await store.daily_rollups(operation.id, meter.api, period.first, period.last)
    gauge = None
    if not meter.kind.is_summed:
        gauge = await store.gauge_value(operation.id, meter.api, period.first - timedelta(days=1))
    rows = []
    for offset in range(period.days):
        day = period.first + timedelta(days=offset)
        total, day_gauge = by_day.get(day, (0, None))
        if meter.kind.is_summed:
            scaled = total
        else:
            gauge = day_gauge if day_gauge is not None else gauge
            scaled = gauge or 0
        rows.append(
            {
                "operation": operation.name,
                "description": meter.description,
                "items": format_items(scaled, meter.kind.scale),
                "date": day.isoformat(),
            }
        )
    return rows


def services_rows(operation: Operation) -> list[dict[str, str]]:
    return [services_record(operation.licenses, operation.pbx, operation.services)]


def token_info_rows(token: Token, limit: int, usage: Usage) -> list[dict[str, str]]:
    """Where a token stands today; every value a string, as the platform sends them."""
    available = max(0, min(limit - usage.token_used, limit - usage.operation_used))
    return [
        {
            "description": token.description,
            "token_limit": str(limit),
            "token_use_today": str(usage.token_used),
            "all_token_today": str(usage.operation_used),
            "available_consumption_options": str(available),
        }
    ]
