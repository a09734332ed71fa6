"""``/admin/api/v1``: operations, tokens, usage, events, the audit log, identities.

The wire side only: the use cases are :mod:`voxmeter.services` (operations,
tokens, usage) and :mod:`voxmeter.services.admins` / ``insights``; every
mutation is written to the audit log with its before and after.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from voxmeter.contract import errors, messages, wire
from voxmeter.contract.meters import BILLING_METERS, CodeType, billing_meter
from voxmeter.contract.quantities import format_items
from voxmeter.domain.admins import AuditEntry, IdentityKind, Role
from voxmeter.domain.models import Operation, TokenScope
from voxmeter.server import responses
from voxmeter.server.admin.auth import (
    admin_caller,
    clear_session_cookie,
    console_of,
    set_session_cookie,
)
from voxmeter.services.admin import TokenStanding
from voxmeter.services.admins import Caller, identity_view
from voxmeter.services.console import ConsoleServices
from voxmeter.services.insights import Month, OperationSummary, meter_named
from voxmeter.storage.admin import EventQuery, EventRow

PREFIX = "/admin/api/v1"
MAX_BODY = 1024 * 1024
MAX_LIMIT = 1000

_decode = msgspec.json.Decoder()


def _found(data: list[Any]) -> Response:
    return responses.success(CodeType.NUMBER, messages.RECORDS_FOUND.format(count=len(data)), data)


def _done(msg: str, data: list[Any]) -> Response:
    return responses.success(CodeType.NUMBER, msg, data)


async def _object(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise errors.ApiError(413, errors.BODY_TOO_LARGE.format(limit=MAX_BODY))
    try:
        document = _decode.decode(body or b"{}")
    except msgspec.DecodeError as exc:
        raise errors.ApiError(400, errors.BODY_NOT_JSON, [{"reason": str(exc)}]) from None
    if not isinstance(document, dict):
        raise errors.invalid_parameter("body", "a JSON object")
    return document


def _field(document: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = document.get(name, default)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise errors.invalid_parameter(name, f"a JSON {kind.__name__}")
    return value


def _services_field(document: dict[str, Any]) -> frozenset[str] | None:
    value = document.get("services")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise errors.invalid_parameter("services", "a list of service names")
    return frozenset(value)


def _limit(request: Request, default: int = 100) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise errors.invalid_parameter("limit", f"1 to {MAX_LIMIT}")
    return int(text)


def _moment(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise errors.invalid_parameter(name, "an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise errors.invalid_parameter(name, "with a UTC offset")
    return moment


def operation_view(operation: Operation, archived: bool) -> dict[str, Any]:
    return {
        "id": operation.id,
        "name": operation.name,
        "licenses": operation.licenses,
        "pbx": operation.pbx,
        "services": sorted(operation.services),
        "timezone": operation.timezone,
        "server_id": operation.server_id,
        "created_at": operation.created_at.isoformat(),
        "archived": archived,
    }


def token_view(standing: TokenStanding) -> dict[str, Any]:
    token = standing.token
    return {
        "id": token.id,
        "scope": token.scope.value,
        "description": token.description,
        "created_at": token.created_at.isoformat(),
        "last_used_at": None if token.last_used_at is None else token.last_used_at.isoformat(),
        "revoked_at": None if token.revoked_at is None else token.revoked_at.isoformat(),
        "limit": standing.limit,
        "used_today": standing.usage.token_used,
        "operation_used_today": standing.usage.operation_used,
    }


def summary_view(summary: OperationSummary) -> dict[str, Any]:
    return {
        "operation": summary.operation.name,
        "archived": summary.archived,
        "today": summary.today.isoformat(),
        "calls_today": summary.calls_today,
        "call_limit": summary.call_limit,
        "meters": {
            f.meter: {
                "items": f.items,
                "same_day_last_month": f.same_day_last_month,
                "change": f.change,
            }
            for f in summary.figures
        },
    }


def meter_quantity(scaled: int | None, meter: str) -> str | None:
    """A stored (scaled) quantity as its meter counts it, as the reports show it."""
    if scaled is None:
        return None
    found = billing_meter(meter)
    return format_items(scaled, found.kind.scale if found else 0)


def event_view(row: EventRow) -> dict[str, Any]:
    return {
        "id": row.event_id,
        "meter": row.meter,
        "quantity": meter_quantity(row.quantity, row.meter),
        "effective_quantity": meter_quantity(row.effective_quantity, row.meter),
        "state": row.state,
        "time": row.occurred_at.isoformat(),
        "received_at": row.received_at.isoformat(),
        "attributes": None if row.attributes is None else _decode.decode(row.attributes),
    }


def audit_view(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "before": None if entry.before is None else _decode.decode(entry.before),
        "after": None if entry.after is None else _decode.decode(entry.after),
    }


async def _operation(console: ConsoleServices, request: Request) -> Operation:
    return await console.services.operations.get(request.path_params["name"])


async def _archived(console: ConsoleServices, operation: Operation) -> bool:
    return operation.id in await console.store.archived_operations()


# -- session -------------------------------------------------------------------


async def login(request: Request) -> Response:
    document = await _object(request)
    name, password = _field(document, "name", str, ""), _field(document, "password", str, "")
    # The peer's address: behind a proxy, the proxy's own (forwarded headers can be forged).
    address = request.client.host if request.client is not None else ""
    session = await console_of(request).admins.login(name, password, address)
    response = _done(
        "LOGGED IN",
        [{"name": session.identity.name, "role": session.identity.role.value,
          "csrf": session.csrf}],
    )  # fmt: skip
    set_session_cookie(request, response, session)
    return response


async def logout(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    cookie = request.cookies.get("voxmeter_session")
    if cookie:
        await console.admins.logout(cookie)
    response = _done("LOGGED OUT", [])
    clear_session_cookie(response)
    return response


# -- identities ----------------------------------------------------------------


async def list_identities(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.OWNER)
    return _found([identity_view(i) for i in await console.admins.identities()])


async def create_identity(request: Request) -> Response:
    console, caller = await admin_caller(request, Role.OWNER)
    document = await _object(request)
    try:
        role = Role(_field(document, "role", str, Role.VIEWER.value))
        kind = IdentityKind(_field(document, "kind", str, IdentityKind.USER.value))
    except ValueError as exc:
        raise errors.invalid_parameter("role/kind", str(exc)) from None
    identity, secret = await console.admins.create(
        caller.name, _field(document, "name", str, ""), role, kind
    )
    return _done("ADMIN CREATED", [{**identity_view(identity), "secret": secret}])


async def disable_identity(request: Request) -> Response:
    console, caller = await admin_caller(request, Role.OWNER)
    identity = await console.admins.disable(caller.name, request.path_params["name"])
    return _done("ADMIN DISABLED", [identity_view(identity)])


# -- operations ----------------------------------------------------------------


async def list_operations(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    return _found([operation_view(op, a) for op, a in await console.insights.operations()])


async def create_operation(request: Request) -> Response:
    console, caller = await admin_caller(request, Role.ADMIN)
    document = await _object(request)
    operations = console.services.operations
    operation = await console.admins.audited(
        caller, "operation.create", str(document.get("name")), None,
        lambda: operations.create(
            _field(document, "name", str, ""),
            licenses=_field(document, "licenses", int, 0),
            pbx=_field(document, "pbx", int, 0),
            services=_services_field(document) or frozenset(),
            timezone=_field(document, "timezone", str, "America/Bogota"),
            server_id=_field(document, "server_id", str, "0001"),
        ),
        lambda op: operation_view(op, False),
    )  # fmt: skip
    return _done("OPERATION CREATED", [operation_view(operation, False)])


async def show_operation(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    operation = await _operation(console, request)
    return _found([operation_view(operation, await _archived(console, operation))])


async def change_operation(request: Request) -> Response:
    console, caller = await admin_caller(request, Role.ADMIN)
    before = await _operation(console, request)
    archived = await _archived(console, before)
    document = await _object(request)
    operations = console.services.operations
    operation = await console.admins.audited(
        caller, "operation.change", before.name, operation_view(before, archived),
        lambda: operations.update(
            before.name,
            licenses=_field(document, "licenses", int),
            pbx=_field(document, "pbx", int),
            services=_services_field(document),
            timezone=_field(document, "timezone", str),
            server_id=_field(document, "server_id", str),
        ),
        lambda op: operation_view(op, archived),
    )  # fmt: skip
    return _done("OPERATION CHANGED", [operation_view(operation, archived)])


async def archive_operation(request: Request) -> Response:
    console, caller = await admin_caller(request, Role.ADMIN)
    operation = await console.insights.archive(caller, request.path_params["name"])
    return _done("OPERATION ARCHIVED", [operation_view(operation, True)])


async def portal_link(request: Request) -> Response:
    console, caller = await admin_caller(request, Role.ADMIN)
    operation = await _operation(console, request)
    token, expires = console.insights.portal_link(operation)
    url = str(request.url_for("portal", token=token))
    await console.admins.record(
        caller.name, "portal.link", operation.name, None, {"expires": expires.isoformat()}
    )
    return _done("PORTAL LINK CREATED", [{"url": url, "expires": expires.isoformat()}])


# -- tokens ----------------------------------------------------------------------


async def list_tokens(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    operation = await _operation(console, request)
    standings = await console.services.tokens.standings(operation)
    return _found([token_view(s) for s in standings])


async def create_token(request: Request) -> Response:
    console, caller = await admin_caller(request, Role.ADMIN)
    operation = await _operation(console, request)
    document = await _object(request)
    try:
        scope = TokenScope(_field(document, "scope", str, TokenScope.REPORT.value))
    except ValueError:
        raise errors.invalid_parameter("scope", "report or ingest") from None
    description = _field(document, "description", str, "")
    issued = await console.admins.audited(
        caller, "token.create", operation.name, None,
        lambda: console.services.tokens.create(operation, scope, description),
        lambda issued: {"id": issued.token.id, "scope": scope.value,
                        "description": description},
    )  # fmt: skip
    return _done(
        "TOKEN CREATED",
        [{"id": issued.token.id, "scope": scope.value, "description": description,
          "created_at": issued.token.created_at.isoformat(), "secret": issued.secret}],
    )  # fmt: skip


async def revoke_token(request: Request) -> Response:
    console, caller = await admin_caller(request, Role.ADMIN)
    operation = await _operation(console, request)
    token_id = request.path_params["token_id"]
    standings = await console.services.tokens.standings(operation)
    standing = next((s for s in standings if s.token.id == token_id), None)
    if standing is None or standing.token.revoked_at is not None:
        raise errors.ApiError(404, errors.TOKEN_UNKNOWN.format(token_id=token_id))
    await console.admins.audited(
        caller, "token.revoke", f"{operation.name}/{token_id}", token_view(standing),
        lambda: console.services.tokens.revoke(token_id),
        lambda _: {"id": token_id, "revoked": True},
    )  # fmt: skip
    return _done("TOKEN REVOKED", [{"id": token_id}])


async def revoke_token_by_id(request: Request) -> Response:
    """Revoke a token known only by its id (as ``voxmeter token revoke`` does)."""
    console, caller = await admin_caller(request, Role.ADMIN)
    token_id = request.path_params["token_id"]
    await console.admins.audited(
        caller, "token.revoke", token_id, None,
        lambda: console.services.tokens.revoke(token_id),
        lambda _: {"id": token_id, "revoked": True},
    )  # fmt: skip
    return _done("TOKEN REVOKED", [{"id": token_id}])


# -- usage -----------------------------------------------------------------------


async def usage(request: Request) -> Response:
    """Daily figures per operation and meter for a month, or totals by an event attribute."""
    console, _ = await admin_caller(request, Role.VIEWER)
    query = request.query_params
    named = query.getlist("operation")
    everything = [op for op, _ in await console.insights.operations()]
    operations = (
        [await console.services.operations.get(name) for name in named] if named else everything
    )
    meters = [meter_named(api) for api in query.getlist("meter")] or list(BILLING_METERS)
    month_text = query.get("month")
    group_by = query.get("group_by")
    output = query.get("format", "json")
    if output not in ("json", "csv"):
        raise errors.invalid_parameter("format", "json or csv")
    rows: list[dict[str, Any]] = []
    for operation in operations:
        month = (
            Month.parse(month_text) if month_text else Month.of(console.insights.today(operation))
        )
        if group_by:
            for meter in meters:
                for _, value, items in await console.insights.by_attribute(
                    [operation], meter, month, group_by
                ):
                    rows.append({"operation": operation.name, "meter": meter.api,
                                 "month": str(month), group_by: value, "items": items})  # fmt: skip
        else:
            for meter_api, days in (await console.insights.daily(operation, month, meters)).items():
                rows.extend(
                    {"operation": operation.name, "meter": meter_api,
                     "date": day.isoformat(), "items": items}
                    for day, items in days
                )  # fmt: skip
    if output == "csv":
        return _csv(rows, ["operation", "meter", "month", group_by, "items"] if group_by
                    else ["operation", "meter", "date", "items"])  # fmt: skip
    return _found(rows)


def _csv(rows: list[dict[str, Any]], columns: list[Any]) -> Response:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8")


async def overview(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    return _found([summary_view(s) for s in await console.insights.overview()])


# -- events ------------------------------------------------------------------------


async def search_events(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    operation = await _operation(console, request)
    meter = request.query_params.get("meter") or None
    if meter is not None:
        meter_named(meter)
    found = await console.insights.events(
        EventQuery(
            operation_id=operation.id,
            meter=meter,
            since=_moment(request, "since"),
            until=_moment(request, "until"),
            event_id=request.query_params.get("id") or None,
            limit=_limit(request),
        )
    )
    return _found([event_view(row) for row in found])


async def rejections(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    operation = await _operation(console, request)
    usage_service = console.services.usage
    found = await usage_service.rejections(operation, _limit(request))
    dropped = await usage_service.dropped_rejections(operation)
    sent = await usage_service.refused_payloads(operation, found)
    data = [{"received_at": r.received_at.isoformat(), "index": r.index, "id": r.event_id,
             "reason": r.reason, "sent": sent.get((r.received_at, r.index))}
            for r in found]  # fmt: skip
    return responses.success(
        CodeType.NUMBER,
        messages.RECORDS_FOUND.format(count=len(data)),
        data,
        headers={wire.REJECTIONS_DROPPED_HEADER: str(dropped)},
    )


async def corrections(request: Request) -> Response:
    console, caller = await admin_caller(request, Role.ADMIN)
    operation = await _operation(console, request)
    document = await _object(request)
    raws = document.get("corrections")
    if not isinstance(raws, list) or not 1 <= len(raws) <= MAX_LIMIT:
        raise errors.invalid_parameter("corrections", f"a list of 1 to {MAX_LIMIT}")
    usage_service = console.services.usage
    results = await console.admins.audited(
        caller, "usage.correct", operation.name, None,
        lambda: usage_service.correct(operation, raws),
        lambda results: {"corrections": raws, "results": [r.value for r in results]},
    )  # fmt: skip
    return _done(messages.CORRECTIONS_APPLIED, [{"results": [r.value for r in results]}])


# -- audit ---------------------------------------------------------------------------


async def audit(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    return _found([audit_view(e) for e in await console.admins.audit_log(_limit(request))])


def caller_view(caller: Caller) -> dict[str, Any]:
    return identity_view(caller.identity)


async def whoami(request: Request) -> Response:
    _, caller = await admin_caller(request, Role.VIEWER)
    return _found([caller_view(caller)])
