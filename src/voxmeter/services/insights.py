"""Usage across operations and months, for the admin API and the console.

Figures come from :class:`~voxmeter.services.reports.ReportService`, the
same code the wolkvox endpoints answer with, so the console shows exactly
what a client would read; but no call is admitted, so no operation's quota
is spent. Only what the report path never needed (totals by event
attribute, event search, calls per day across operations) is read through
the console's own store.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from voxmeter.config import Settings
from voxmeter.contract import errors
from voxmeter.contract.meters import BILLING_METERS, Meter, billing_meter
from voxmeter.contract.quantities import format_items
from voxmeter.domain import admins
from voxmeter.domain.admission import Quota
from voxmeter.domain.clock import Clock
from voxmeter.domain.models import Operation
from voxmeter.domain.periods import Period
from voxmeter.services import Services
from voxmeter.services.admins import AdminService, Caller
from voxmeter.storage.admin import AdminStore, EventQuery, EventRow, PeriodFigures

_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, slots=True)
class MeterFigure:
    meter: str
    items: str  # month to date, as the billing endpoint answers it
    same_day_last_month: str
    change: float | None  # fraction; None when last month had nothing


@dataclass(frozen=True, slots=True)
class OperationSummary:
    operation: Operation
    archived: bool
    today: date
    calls_today: int
    call_limit: int
    figures: list[MeterFigure]


@dataclass(frozen=True, slots=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``YYYY-MM``; 400 otherwise."""
        match = re.fullmatch(r"(\d{4})-(\d{2})", text)
        if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1:
            raise errors.invalid_parameter("month", "YYYY-MM")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @property
    def first(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last(self) -> date:
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def meter_named(api: str) -> Meter:
    meter = billing_meter(api)
    if meter is None:
        raise errors.invalid_parameter("meter", f"no billing meter named {api!r}")
    return meter


def _same_day_last_month(today: date) -> Period:
    last_month = Month.of(today.replace(day=1) - timedelta(days=1))
    day = min(today.day, last_month.last.day)
    return Period.month_to_date(date(last_month.year, last_month.month, day))


def _items(figures: PeriodFigures, operation: Operation, meter: Meter) -> str:
    """As :meth:`ReportService.figure` answers: the sum, or the gauge as of the last day."""
    key = (operation.id, meter.api)
    scaled = figures.sums.get(key, 0) if meter.kind.is_summed else figures.gauges.get(key, 0)
    return format_items(scaled, meter.kind.scale)


def _change(now: str, before: str) -> float | None:
    previous = Decimal(before)
    if previous == 0:
        return None
    return float((Decimal(now) - previous) / previous)


class InsightService:
    def __init__(
        self,
        services: Services,
        admin: AdminService,
        store: AdminStore,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self._services = services
        self._admin = admin
        self._store = store
        self._settings = settings
        self._clock = clock

    def today(self, operation: Operation) -> date:
        return self._clock().astimezone(operation.zone).date()

    # -- operations -----------------------------------------------------------

    async def operations(self) -> list[tuple[Operation, bool]]:
        """Every operation, and whether it is archived."""
        archived = await self._store.archived_operations()
        return [(op, op.id in archived) for op in await self._services.operations.list()]

    async def archive(self, caller: Caller, name: str) -> Operation:
        """Archive the operation and revoke its active tokens, so its API answers no more."""
        operation = await self._services.operations.get(name)
        if not await self._store.archive_operation(operation.id, self._clock()):
            raise errors.ApiError(409, errors.OPERATION_ARCHIVED.format(name=name))
        revoked = []
        for standing in await self._services.tokens.standings(operation):
            if standing.token.revoked_at is None:
                await self._services.tokens.revoke(standing.token.id)
                revoked.append(standing.token.id)
        await self._admin.record(
            caller.name, "operation.archive", name, {"archived": False},
            {"archived": True, "revoked_tokens": revoked},
        )  # fmt: skip
        return operation

    # -- figures --------------------------------------------------------------

    async def summary(self, operation: Operation, archived: bool = False) -> OperationSummary:
        """Month to date per meter against the same day last month, and today's calls."""
        return (await self._summaries([(operation, archived)]))[0]

    async def overview(self) -> list[OperationSummary]:
        return await self._summaries(await self.operations())

    async def _summaries(self, listed: list[tuple[Operation, bool]]) -> list[OperationSummary]:
        """Summaries read a few queries per local date, never per operation or meter.

        Operations in other time zones may be on another day, so they are read
        in groups sharing one "today"; the figures are the billing endpoint's.
        """
        moment = self._clock()
        by_today: dict[date, list[tuple[Operation, bool]]] = {}
        for operation, archived in listed:
            by_today.setdefault(self.today(operation), []).append((operation, archived))
        found: dict[int, OperationSummary] = {}
        for today, group in by_today.items():
            ids = [operation.id for operation, _ in group]
            this_month, last_month = Period.month_to_date(today), _same_day_last_month(today)
            now = await self._store.period_figures(ids, this_month.first, this_month.last)
            before = await self._store.period_figures(ids, last_month.first, last_month.last)
            quotas = {
                operation.id: Quota.for_call(operation, moment, self._settings.calls_per_license)
                for operation, _ in group
            }
            calls: dict[tuple[int, date], int] = {}
            for day in {quota.day for quota in quotas.values()}:
                for operation_id, used in (await self._store.calls_on_day(ids, day)).items():
                    calls[operation_id, day] = used
            for operation, archived in group:
                figures = []
                for meter in BILLING_METERS:
                    items = _items(now, operation, meter)
                    previous = _items(before, operation, meter)
                    change = _change(items, previous)
                    figures.append(MeterFigure(meter.api, items, previous, change))
                quota = quotas[operation.id]
                found[operation.id] = OperationSummary(
                    operation=operation,
                    archived=archived,
                    today=today,
                    calls_today=calls.get((operation.id, quota.day), 0),
                    call_limit=quota.operation_limit,
                    figures=figures,
                )
        return [found[operation.id] for operation, _ in listed]

    async def daily(
        self, operation: Operation, month: Month, meters: list[Meter] | None = None
    ) -> dict[str, list[tuple[date, str]]]:
        """Per meter, one (day, items) per day of the month up to the operation's today."""
        today = self.today(operation)
        last = min(month.last, today)
        result: dict[str, list[tuple[date, str]]] = {}
        if last < month.first:
            return {meter.api: [] for meter in meters or BILLING_METERS}
        period = Period(first=month.first, last=last, today=today)
        for meter in meters or BILLING_METERS:
            rows = await self._services.reports.daily_rows(operation, meter, period)
            result[meter.api] = [(date.fromisoformat(r["date"]), r["items"]) for r in rows]
        return result

    async def by_attribute(
        self, operations: list[Operation], meter: Meter, month: Month, attribute: str
    ) -> list[tuple[Operation, str | None, str]]:
        """Counted usage of the meter over the month, per operation and attribute value."""
        if not _ATTRIBUTE.fullmatch(attribute):
            raise errors.invalid_parameter("group_by", "1 to 64 letters, digits, _ . -")
        by_id = {op.id: op for op in operations}
        rows = await self._store.totals_by_attribute(
            list(by_id), meter.api, month.first, month.last, attribute
        )
        return [
            (by_id[op], value, format_items(total, meter.kind.scale)) for op, value, total in rows
        ]

    async def events(self, query: EventQuery) -> list[EventRow]:
        return await self._store.search_events(query)

    # -- client portal ----------------------------------------------------------

    def portal_link(self, operation: Operation) -> tuple[str, datetime]:
        """A signed token granting read access to one operation's usage, and its expiry."""
        if not self._settings.portal_secret:
            raise errors.ApiError(400, errors.PORTAL_NOT_CONFIGURED)
        expires = self._clock() + timedelta(days=self._settings.portal_link_days)
        token = admins.portal_token(
            self._settings.portal_secret, operation.name, int(expires.timestamp())
        )
        return token, expires

    async def portal_operation(self, token: str) -> Operation:
        """The operation a portal token grants; 403 for a forged, altered or expired one."""
        secret = self._settings.portal_secret
        name = (
            admins.portal_operation(secret, token, int(self._clock().timestamp()))
            if secret
            else None
        )
        if name is None:
            raise errors.ApiError(403, errors.PORTAL_LINK_INVALID)
        return await self._services.operations.get(name)
