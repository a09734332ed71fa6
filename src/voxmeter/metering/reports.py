"""Figures for the billing and information endpoints, computed from the rollups."""

from __future__ import annotations

from datetime import datetime

from voxmeter.contract.meters import Meter
from voxmeter.contract.quantities import format_items
from voxmeter.contract.services import services_record
from voxmeter.metering.models import Operation
from voxmeter.storage.base import Store


async def month_to_date(store: Store, operation: Operation, meter: Meter, now: datetime) -> str:
    """``items`` for ``meter``: the month's sum so far, or the gauge as of today.

    "Today" and "this month" are the operation's, in its own time zone.
    """
    today = operation.local_date(now)
    if meter.kind.is_summed:
        scaled = await store.summed_total(operation.id, meter.api, today.replace(day=1), today)
    else:
        scaled = await store.gauge_value(operation.id, meter.api, today) or 0
    return format_items(scaled, meter.kind.scale)


async def billing_rows(
    store: Store, operation: Operation, meter: Meter, now: datetime
) -> list[dict[str, str]]:
    """The seed's single row: operation, description, items, date."""
    return [
        {
            "operation": operation.name,
            "description": meter.description,
            "items": await month_to_date(store, operation, meter, now),
            "date": operation.local_date(now).strftime(meter.date_format.value),
        }
    ]


def services_rows(operation: Operation) -> list[dict[str, str]]:
    return [services_record(operation.licenses, operation.pbx, operation.services)]
