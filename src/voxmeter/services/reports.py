"""Figures for the billing and information endpoints, computed from the rollups."""

from __future__ import annotations

from datetime import timedelta

from voxmeter.contract.meters import Meter
from voxmeter.contract.quantities import format_items
from voxmeter.contract.services import services_record
from voxmeter.domain.admission import Quota, Usage
from voxmeter.domain.models import Operation, Token
from voxmeter.domain.periods import Period
from voxmeter.storage.base import Store


class ReportService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def figure(self, operation: Operation, meter: Meter, period: Period) -> str:
        """``items`` over the period: the sum for consumption, the gauge as of its last day."""
        store = self._store
        if meter.kind.is_summed:
            scaled = await store.summed_total(operation.id, meter.api, period.first, period.last)
        else:
            scaled = await store.gauge_value(operation.id, meter.api, period.last) or 0
        return format_items(scaled, meter.kind.scale)

    async def billing_rows(
        self, operation: Operation, meter: Meter, period: Period
    ) -> list[dict[str, str]]:
        """The seed's single row: operation, description, items, date (the query date)."""
        return [
            {
                "operation": operation.name,
                "description": meter.description,
                "items": await self.figure(operation, meter, period),
                "date": meter.date_format.render(period.today),
            }
        ]

    async def daily_rows(
        self, operation: Operation, meter: Meter, period: Period
    ) -> list[dict[str, str]]:
        """One row per day of the period: that day's sum, or the gauge as of that day."""
        store = self._store
        by_day = await store.daily_rollups(operation.id, meter.api, period.first, period.last)
        gauge = None
        if not meter.kind.is_summed:
            gauge = await store.gauge_value(
                operation.id, meter.api, period.first - timedelta(days=1)
            )
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

    @staticmethod
    def services_rows(operation: Operation) -> list[dict[str, str]]:
        return [services_record(operation.licenses, operation.pbx, operation.services)]

    async def token_info_rows(
        self, token: Token, quota: Quota, usage: Usage | None = None
    ) -> list[dict[str, str]]:
        """Where a token stands today; ``usage`` read from the store unless given."""
        if usage is None:
            usage = await self._store.calls_today(token.id, token.operation_id, quota.day)
        return token_info_rows(token, quota.token_limit, usage)


def token_info_rows(token: Token, limit: int, usage: Usage) -> list[dict[str, str]]:
    """Where a token stands today; every value a string, as the platform sends them."""
    # The platform's definition; the operation-wide remainder is in X-RateLimit-Remaining.
    available = max(0, limit - usage.token_used)
    return [
        {
            "description": token.description,
            "token_limit": str(limit),
            "token_use_today": str(usage.token_used),
            "all_token_today": str(usage.operation_used),
            "available_consumption_options": str(available),
        }
    ]
