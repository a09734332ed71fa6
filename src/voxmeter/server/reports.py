"""``GET /api/v2/billing.php`` and ``GET /api/v2/information.php``."""

from __future__ import annotations

from datetime import date

from starlette.requests import Request
from starlette.responses import Response

from voxmeter.config import Settings
from voxmeter.contract import envelope, errors
from voxmeter.contract.envelope import BILLING_MSG
from voxmeter.contract.meters import Family, Meter, lookup
from voxmeter.contract.services import SERVICES_MSG
from voxmeter.metering import reports
from voxmeter.metering.limits import Quota
from voxmeter.metering.models import Principal, Scope
from voxmeter.metering.reports import Period
from voxmeter.server import params, responses
from voxmeter.server.auth import authenticate, presented_token
from voxmeter.server.limits import limited
from voxmeter.server.runtime import Runtime, runtime_of

DAILY = "daily"


async def _caller(request: Request, family: Family) -> tuple[Runtime, Principal, Meter]:
    """Token first, then the ``api`` parameter: the platform's order of refusals."""
    runtime = runtime_of(request)
    secret = presented_token(request)
    api = params.required(request, "api")
    principal = await authenticate(runtime, secret, Scope.REPORT)
    meter = lookup(family, api)
    if meter is None:
        raise errors.api_does_not_exist()
    return runtime, principal, meter


def _day(request: Request, name: str) -> date | None:
    value = params.optional(request, name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise errors.invalid_parameter(name, "expected a date as YYYY-MM-DD") from None


def _period(request: Request, today: date, settings: Settings) -> tuple[Period, bool]:
    """The days asked for (month to date by default) and whether rows are daily.

    Everything here is checked before the call is counted: bad input changes nothing.
    """
    detail = params.optional(request, "detail")
    if detail not in (None, DAILY):
        raise errors.invalid_parameter("detail", f"the only detail is {DAILY!r}")
    month = Period.month_to_date(today)
    first = _day(request, "date_ini") or month.first
    last = _day(request, "date_end") or month.last
    if first > last:
        raise errors.invalid_parameter("date_ini", "date_ini is after date_end")
    period = Period(first=first, last=last, today=today)
    if period.days > settings.max_range_days:
        raise errors.ApiError(400, errors.RANGE_TOO_LONG.format(days=settings.max_range_days))
    if first < month.first or last > month.last:
        raise errors.ApiError(400, errors.CURRENT_MONTH_ONLY)
    daily = detail == DAILY
    if (period.days if daily else 1) > settings.max_records_down:
        raise errors.ApiError(
            400, errors.TOO_MANY_RECORDS.format(records=settings.max_records_down)
        )
    return period, daily


def _capped(body: bytes, settings: Settings) -> bytes:
    if len(body) > settings.max_result_bytes:
        megabytes = settings.max_result_bytes / (1024 * 1024)
        raise errors.ApiError(400, errors.RESULT_TOO_LARGE.format(megabytes=f"{megabytes:g}"))
    return body


async def billing(request: Request) -> Response:
    runtime, principal, meter = await _caller(request, Family.BILLING)
    operation = principal.operation
    period, daily = _period(request, operation.local_date(runtime.clock()), runtime.settings)
    async with limited(runtime, principal) as call:
        produce = reports.daily_rows if daily else reports.billing_rows
        rows = await produce(runtime.store, operation, meter, period)
        body = envelope.success(meter.code_type, BILLING_MSG, rows)
        return responses.EnvelopeResponse(_capped(body, runtime.settings), headers=call.headers)


async def information(request: Request) -> Response:
    runtime, principal, meter = await _caller(request, Family.INFORMATION)
    async with limited(runtime, principal) as call:
        if meter.api == "services":
            rows = reports.services_rows(principal.operation)
        else:
            quota = Quota.for_call(principal.operation, runtime.clock(), runtime.settings)
            usage = call.usage or await runtime.store.calls_today(
                principal.token.id, principal.operation.id, quota.day
            )
            rows = reports.token_info_rows(principal.token, quota.token_limit, usage)
        return responses.success(meter.code_type, SERVICES_MSG, rows, headers=call.headers)
