"""``GET /api/v2/billing.php`` and ``GET /api/v2/information.php``, as plain ASGI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime

from starlette.types import Receive, Scope, Send

from voxmeter.config import Settings
from voxmeter.contract import envelope, errors, messages
from voxmeter.contract.meters import Family, Meter, lookup
from voxmeter.contract.wire import TOKEN_HEADER
from voxmeter.domain.models import Principal, TokenScope
from voxmeter.domain.periods import Period
from voxmeter.server import params
from voxmeter.server.auth import require_token
from voxmeter.server.limits import LimitedCall
from voxmeter.server.observability import API_SCOPE_KEY
from voxmeter.server.responses import Query, header, parse_query, refusal, send_failure, send_json
from voxmeter.server.runtime import Runtime

DAILY = "daily"
_TOKEN_HEADER = TOKEN_HEADER.encode()


def _day(query: Query, name: str) -> date | None:
    value = params.optional(query, name)
    if value is None:
        return None
    try:
        if len(value) == len(_PLATFORM_DATE_EXAMPLE):
            return datetime.strptime(value, _PLATFORM_DATE).date()
        return date.fromisoformat(value)
    except ValueError:
        raise errors.invalid_parameter(
            name, "expected a date as YYYY-MM-DD or YYYYMMDDHHMMSS"
        ) from None


# The date format of the platform's other report endpoints; the day is what counts.
_PLATFORM_DATE = "%Y%m%d%H%M%S"
_PLATFORM_DATE_EXAMPLE = "20261101000000"


def _period(query: Query, today: date, settings: Settings) -> tuple[Period, bool]:
    """The days asked for (month to date by default) and whether rows are daily.

    Everything here is checked before the call is counted: bad input changes nothing.
    """
    detail = params.optional(query, "detail")
    if detail not in (None, DAILY):
        raise errors.invalid_parameter("detail", f"the only detail is {DAILY!r}")
    month = Period.month_to_date(today)
    first = _day(query, "date_ini") or month.first
    last = _day(query, "date_end") or month.last
    if first > last:
        raise errors.invalid_parameter("date_ini", "date_ini is after date_end")
    period = Period(first=first, last=last, today=today)
    if period.days > settings.max_range_days:
        raise errors.ApiError(400, errors.RANGE_TOO_LONG.format(days=settings.max_range_days))
    if first < month.first or last > month.last:
        raise errors.ApiError(400, errors.CURRENT_MONTH_ONLY)
    daily = detail == DAILY
    if (period.days if daily else 1) > settings.max_report_records:
        raise errors.ApiError(
            400, errors.TOO_MANY_RECORDS.format(records=settings.max_report_records)
        )
    return period, daily


def _capped(body: bytes, settings: Settings) -> bytes:
    if len(body) > settings.max_result_bytes:
        megabytes = settings.max_result_bytes / (1024 * 1024)
        raise errors.ApiError(400, errors.RESULT_TOO_LARGE.format(megabytes=f"{megabytes:g}"))
    return body


async def _billing(
    runtime: Runtime, principal: Principal, meter: Meter, query: Query, receive: Receive, send: Send
) -> None:
    today = principal.operation.local_date(runtime.clock())
    period, daily = _period(query, today, runtime.settings)
    async with LimitedCall(runtime, principal, receive) as call:
        operation = call.principal.operation
        if operation is not principal.operation:  # changed since it was cached
            period, daily = _period(query, operation.local_date(runtime.clock()), runtime.settings)
        reports = runtime.services.reports
        produce = reports.daily_rows if daily else reports.billing_rows
        rows = await produce(operation, meter, period)
        body = _capped(envelope.success(meter.code_type, messages.BILLING, rows), runtime.settings)
    # Sent after the slot is released: a client that calls again as soon as it
    # has the answer must find the slot free.
    await send_json(send, 200, body, call.headers)


async def _information(
    runtime: Runtime, principal: Principal, meter: Meter, query: Query, receive: Receive, send: Send
) -> None:
    async with LimitedCall(runtime, principal, receive) as call:
        token, operation = call.principal.token, call.principal.operation
        reports = runtime.services.reports
        if meter.api == "services":
            rows = reports.services_rows(operation)
        else:
            quota = runtime.services.access.quota(operation, runtime.clock())
            rows = await reports.token_info_rows(token, quota, call.usage)
        body = envelope.success(meter.code_type, messages.SERVICES, rows)
    await send_json(send, 200, body, call.headers)  # after the slot is released


Answer = Callable[[Runtime, Principal, Meter, Query, Receive, Send], Awaitable[None]]


class ReportEndpoint:
    """One family's endpoint: token first, then ``api``, then the call is counted."""

    def __init__(self, family: Family, answer: Answer) -> None:
        self.family = family
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime: Runtime = scope["app"].state.runtime
        try:
            secret = require_token(header(scope, _TOKEN_HEADER))
            query = parse_query(scope["query_string"], runtime.settings.max_query_parameters)
            api = params.required(query, "api")
            principal = await runtime.services.access.authenticate(
                secret, TokenScope.REPORT, cached=runtime.settings.enforce_limits
            )
            meter = lookup(self.family, api)
            if meter is None:
                raise errors.api_does_not_exist()
            scope[API_SCOPE_KEY] = meter.api
            await self.answer(runtime, principal, meter, query, receive, send)
        except Exception as exc:
            # These endpoints bypass Starlette's error handling (see app.py).
            # Nothing was sent yet: every answer is sent whole, at the end.
            await send_failure(send, refusal(exc, scope["method"], scope["path"]))


billing = ReportEndpoint(Family.BILLING, _billing)
information = ReportEndpoint(Family.INFORMATION, _information)
