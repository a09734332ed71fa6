"""``GET /api/v2/billing.php`` and ``GET /api/v2/information.php``, as plain ASGI."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date

from starlette.types import Receive, Scope, Send

from voxmeter.config import Settings
from voxmeter.contract import envelope, errors
from voxmeter.contract.envelope import BILLING_MSG
from voxmeter.contract.meters import Family, Meter, lookup
from voxmeter.contract.services import SERVICES_MSG
from voxmeter.metering import reports
from voxmeter.metering.limits import Quota
from voxmeter.metering.models import Principal
from voxmeter.metering.models import Scope as TokenScope
from voxmeter.metering.reports import Period
from voxmeter.server import params
from voxmeter.server.asgi import Query, header, parse_query, send_failure, send_json
from voxmeter.server.auth import authenticate, require_token
from voxmeter.server.limits import limited
from voxmeter.server.observability import API_SCOPE_KEY
from voxmeter.server.runtime import Runtime

log = logging.getLogger("voxmeter.server")

DAILY = "daily"
_TOKEN_HEADER = b"wolkvox-token"


def _day(query: Query, name: str) -> date | None:
    value = params.optional(query, name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise errors.invalid_parameter(name, "expected a date as YYYY-MM-DD") from None


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


async def _billing(
    runtime: Runtime, principal: Principal, meter: Meter, query: Query, send: Send
) -> None:
    today = principal.operation.local_date(runtime.clock())
    period, daily = _period(query, today, runtime.settings)
    async with limited(runtime, principal) as call:
        operation = call.principal.operation
        if operation is not principal.operation:  # changed since it was cached
            period, daily = _period(query, operation.local_date(runtime.clock()), runtime.settings)
        produce = reports.daily_rows if daily else reports.billing_rows
        rows = await produce(runtime.store, operation, meter, period)
        body = _capped(envelope.success(meter.code_type, BILLING_MSG, rows), runtime.settings)
    # Sent after the slot is released: a client that calls again as soon as it
    # has the answer must find the slot free.
    await send_json(send, 200, body, call.headers)


async def _information(
    runtime: Runtime, principal: Principal, meter: Meter, query: Query, send: Send
) -> None:
    async with limited(runtime, principal) as call:
        token, operation = call.principal.token, call.principal.operation
        if meter.api == "services":
            rows = reports.services_rows(operation)
        else:
            quota = Quota.for_call(operation, runtime.clock(), runtime.settings)
            usage = call.usage or await runtime.store.calls_today(token.id, operation.id, quota.day)
            rows = reports.token_info_rows(token, quota.token_limit, usage)
        body = envelope.success(meter.code_type, SERVICES_MSG, rows)
    await send_json(send, 200, body, call.headers)  # after the slot is released


Answer = Callable[[Runtime, Principal, Meter, Query, Send], Awaitable[None]]


class ReportEndpoint:
    """One family's endpoint: token first, then ``api``, then the call is counted."""

    def __init__(self, family: Family, answer: Answer) -> None:
        self.family = family
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime: Runtime = scope["app"].state.runtime
        try:
            secret = require_token(header(scope, _TOKEN_HEADER))
            query = parse_query(scope["query_string"])
            api = params.required(query, "api")
            principal = await authenticate(
                runtime, secret, TokenScope.REPORT, cached=runtime.settings.enforce_limits
            )
            meter = lookup(self.family, api)
            if meter is None:
                raise errors.api_does_not_exist()
            scope[API_SCOPE_KEY] = meter.api
            await self.answer(runtime, principal, meter, query, send)
        except errors.ApiError as error:
            await send_failure(send, error)
        except Exception:
            # These endpoints bypass Starlette's error handling (see app.py).
            # Nothing was sent yet: every answer is sent whole, at the end.
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            await send_failure(send, errors.ApiError(500, errors.INTERNAL_ERROR))


billing = ReportEndpoint(Family.BILLING, _billing)
information = ReportEndpoint(Family.INFORMATION, _information)
ENDPOINTS: dict[str, ReportEndpoint] = {
    "/api/v2/billing.php": billing,
    "/api/v2/information.php": information,
}
