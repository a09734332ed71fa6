"""``GET /api/v2/billing.php`` and ``GET /api/v2/information.php``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from voxmeter.contract import errors
from voxmeter.contract.envelope import BILLING_MSG
from voxmeter.contract.meters import Family, lookup
from voxmeter.contract.services import SERVICES_MSG
from voxmeter.metering import reports
from voxmeter.metering.models import Scope
from voxmeter.server import params, responses
from voxmeter.server.auth import authenticate, presented_token
from voxmeter.server.runtime import runtime_of


async def billing(request: Request) -> Response:
    runtime = runtime_of(request)
    secret = presented_token(request)
    api = params.required(request, "api")
    principal = await authenticate(runtime, secret, Scope.REPORT)
    meter = lookup(Family.BILLING, api)
    if meter is None:
        raise errors.api_does_not_exist()
    rows = await reports.billing_rows(runtime.store, principal.operation, meter, runtime.clock())
    return responses.success(meter.code_type, BILLING_MSG, rows)


async def information(request: Request) -> Response:
    runtime = runtime_of(request)
    secret = presented_token(request)
    api = params.required(request, "api")
    principal = await authenticate(runtime, secret, Scope.REPORT)
    meter = lookup(Family.INFORMATION, api)
    if meter is None or meter.api != "services":
        raise errors.api_does_not_exist()
    return responses.success(
        meter.code_type, SERVICES_MSG, reports.services_rows(principal.operation)
    )
