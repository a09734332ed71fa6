"""Console pages: overview, operation, events, statements, audit log, login, the portal.

Pages read through the same use cases as the admin API and change nothing:
every change is a ``fetch`` from the page to the admin API, carrying the
session's CSRF token, so the API's checks and audit log cover the console
too. The portal shows one operation to whoever holds its signed link.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from voxmeter.contract import errors
from voxmeter.contract.meters import BILLING_METERS
from voxmeter.contract.services import SERVICE_FLAGS
from voxmeter.server.admin.alerts import alert_view, cap_view, delivery_view, rule_view
from voxmeter.server.admin.api import MAX_LIMIT, meter_quantity
from voxmeter.server.admin.auth import console_of, session_caller
from voxmeter.server.admin.statements import MAX_NUMBER_DIGITS, statement_summary
from voxmeter.services.admins import Caller
from voxmeter.services.insights import Month, meter_named
from voxmeter.storage.admin import EventQuery

# The alerts page shows this many of the latest alerts and deliveries.
RECENT_ALERTS = 100

HERE = Path(__file__).parent
STATIC = (HERE / "static").resolve()
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["meter_quantity"] = meter_quantity
DESCRIPTIONS = {meter.api: meter.description for meter in BILLING_METERS}
# Pages are the console's own: no other origin may frame them or run scripts in them.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _page(
    request: Request, name: str, caller: Caller | None, status: int = 200, **context: Any
) -> Response:
    return templates.TemplateResponse(
        request,
        name,
        {"caller": caller, "descriptions": DESCRIPTIONS, **context},
        status_code=status,
        headers=_HEADERS,
    )


def _to_login() -> Response:
    return RedirectResponse("/console/login", status_code=303)


async def root(request: Request) -> Response:
    return RedirectResponse("/console", status_code=307)


async def login_page(request: Request) -> Response:
    return _page(request, "login.html", None)


async def overview_page(request: Request) -> Response:
    caller = await session_caller(request)
    if caller is None:
        return _to_login()
    summaries = await console_of(request).insights.overview()
    return _page(request, "overview.html", caller, summaries=summaries)


async def operation_page(request: Request) -> Response:
    caller = await session_caller(request)
    if caller is None:
        return _to_login()
    console = console_of(request)
    try:
        operation = await console.services.operations.get(request.path_params["name"])
        month = _month(request, console.insights.today(operation))
    except errors.ApiError as exc:
        return _refused(request, caller, exc)
    archived = operation.id in await console.store.archived_operations()
    daily = await console.insights.daily(operation, month)
    preview, unrated = None, None
    try:
        preview = await console.services.statements.preview(operation.name)
    except errors.ApiError as exc:  # not subscribed, or no prices in force this month
        unrated = exc.msg
    return _page(
        request, "operation.html", caller,
        operation=operation, archived=archived, month=month, services=SERVICE_FLAGS,
        charts=_charts(daily), tokens=await console.services.tokens.standings(operation),
        preview=preview, unrated=unrated,
    )  # fmt: skip


async def events_page(request: Request) -> Response:
    caller = await session_caller(request)
    if caller is None:
        return _to_login()
    console = console_of(request)
    query = request.query_params
    try:
        operation = await console.services.operations.get(request.path_params["name"])
        meter = query.get("meter") or None
        if meter is not None:
            meter_named(meter)
        events = await console.insights.events(
            EventQuery(operation.id, meter=meter, event_id=query.get("id") or None, limit=200)
        )
    except errors.ApiError as exc:
        return _refused(request, caller, exc)
    rejections = await console.services.usage.rejections(operation, MAX_LIMIT)
    sent = await console.services.usage.refused_payloads(operation, rejections)
    batches: dict[str, list[Any]] = {}
    for rejection in rejections:
        batches.setdefault(rejection.received_at.isoformat(), []).append(
            (rejection, sent.get((rejection.received_at, rejection.index)))
        )
    return _page(
        request, "events.html", caller, operation=operation, events=events, batches=batches,
        meter=meter or "", event_id=query.get("id", ""),
    )  # fmt: skip


async def alerts_page(request: Request) -> Response:
    """Caps, alert rules, the latest alerts and their deliveries (replayed through the API)."""
    caller = await session_caller(request)
    if caller is None:
        return _to_login()
    alerts = console_of(request).services.alerts
    return _page(
        request,
        "alerts.html",
        caller,
        caps=[cap_view(name, cap) for name, cap in await alerts.caps()],
        rules=[rule_view(name, rule) for name, rule in await alerts.rules()],
        alerts=[alert_view(event) for event in await alerts.events(RECENT_ALERTS)],
        deliveries=[delivery_view(d) for d in await alerts.deliveries(RECENT_ALERTS)],
    )


async def statements_page(request: Request) -> Response:
    caller = await session_caller(request)
    if caller is None:
        return _to_login()
    query = request.query_params
    statements = console_of(request).services.statements
    try:
        found = await statements.list_statements(
            query.get("operation") or None, query.get("month") or None
        )
    except errors.ApiError as exc:
        return _refused(request, caller, exc)
    return _page(
        request, "statements.html", caller, statements=[statement_summary(s) for s in found],
        operation=query.get("operation", ""), month=query.get("month", ""),
    )  # fmt: skip


async def statement_page(request: Request) -> Response:
    caller = await session_caller(request)
    if caller is None:
        return _to_login()
    statements = console_of(request).services.statements
    text = request.path_params["number"]
    try:
        if not text.isdigit() or len(text) > MAX_NUMBER_DIGITS:
            raise errors.ApiError(404, errors.STATEMENT_UNKNOWN.format(number=text))
        stored = await statements.get(int(text))
        lines = await statements.lines(stored.number)
    except errors.ApiError as exc:
        return _refused(request, caller, exc)
    return _page(
        request, "statement.html", caller, statement=orjson.loads(stored.document), lines=lines
    )


async def audit_page(request: Request) -> Response:
    caller = await session_caller(request)
    if caller is None:
        return _to_login()
    entries = await console_of(request).admins.audit_log(500)
    return _page(request, "audit.html", caller, entries=entries)


async def portal(request: Request) -> Response:
    """One operation's usage for whoever holds its signed link, and nothing else."""
    console = console_of(request)
    try:
        operation = await console.insights.portal_operation(request.path_params["token"])
        month = _month(request, console.insights.today(operation))
    except errors.ApiError as exc:
        return _page(request, "refused.html", None, status=exc.status, error=exc)
    summary = await console.insights.summary(operation)
    daily = await console.insights.daily(operation, month)
    return _page(
        request, "portal.html", None, operation=operation, summary=summary, month=month,
        charts=_charts(daily),
    )  # fmt: skip


async def static(request: Request) -> Response:
    return _file(STATIC, request.path_params["file"])


async def vendored(request: Request) -> Response:
    return _file(STATIC / "vendor", request.path_params["file"])


def _file(folder: Path, name: str) -> Response:
    """A file of the folder itself (a path parameter never holds '/')."""
    path = folder / name
    if name.startswith(".") or not path.is_file():
        raise errors.not_found()
    return FileResponse(path, headers={"Cache-Control": "max-age=3600"})


def _month(request: Request, today: date) -> Month:
    text = request.query_params.get("month")
    return Month.parse(text) if text else Month.of(today)


def _charts(daily: dict[str, list[tuple[date, str]]]) -> str:
    """The charts' data as JSON for the page's script: meters with any usage in the month."""
    charts = [
        {
            "meter": meter,
            "title": DESCRIPTIONS[meter],
            "labels": [day.isoformat() for day, _ in days],
            "values": [float(items) for _, items in days],
        }
        for meter, days in daily.items()
        if any(items != "0" for _, items in days)
    ]
    # Safe inside a <script type="application/json">: no "</" can close it.
    return json.dumps(charts).replace("</", "<\\/")


def _refused(request: Request, caller: Caller, error: errors.ApiError) -> Response:
    return _page(request, "refused.html", caller, status=error.status, error=error)
