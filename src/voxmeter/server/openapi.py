"""The OpenAPI 3.1 document and the interactive page that renders it.

Generated from the meters catalogue and the contract's messages, so it
cannot drift from what the server answers; a test compares it with the
routes. The page is the vendored Swagger UI (static/swagger-ui, with its
licence), served from here: it fetches nothing from another host.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from voxmeter import __version__
from voxmeter.contract import errors, messages, wire
from voxmeter.contract.envelope import success_code
from voxmeter.contract.meters import BILLING_METERS, METERS, CodeType, Family
from voxmeter.contract.services import SERVICE_FLAGS, services_record
from voxmeter.server.admin import docs as admin_docs

DOCS_ASSETS_PATH = f"{wire.DOCS_PATH}/assets/{{file}}"
_STATIC = Path(__file__).resolve().parent / "static"
_JS, _CSS, _TEXT = (
    f"{kind}; charset=utf-8" for kind in ("text/javascript", "text/css", "text/plain")
)
_ASSETS = {
    "docs.js": (_STATIC / "docs.js", _JS),
    "swagger-ui-bundle.js": (_STATIC / "swagger-ui" / "swagger-ui-bundle.js", _JS),
    "swagger-ui.css": (_STATIC / "swagger-ui" / "swagger-ui.css", _CSS),
    "LICENSE": (_STATIC / "swagger-ui" / "LICENSE", _TEXT),
    "NOTICE": (_STATIC / "swagger-ui" / "NOTICE", _TEXT),
}
_ASSETS_URL = DOCS_ASSETS_PATH.removesuffix("{file}")
_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>voxmeter API</title>"
    f'<link rel=stylesheet href="{_ASSETS_URL}swagger-ui.css">'
    f"<noscript>The reference needs JavaScript; the document itself is"
    f' <a href="{wire.OPENAPI_PATH}">{wire.OPENAPI_PATH}</a>.</noscript>'
    "<div id=swagger-ui></div>"
    f'<script src="{_ASSETS_URL}swagger-ui-bundle.js"></script>'
    f'<script src="{_ASSETS_URL}docs.js"></script>'
    f'<footer><a href="{_ASSETS_URL}LICENSE">Swagger UI licence</a>'
    f' and <a href="{_ASSETS_URL}NOTICE">notice</a></footer></html>'
)
_NOSNIFF = {"X-Content-Type-Options": "nosniff"}
# Scripts and styles only from files of this server (no inline ones, no other host);
# Swagger UI draws its icons as data: images.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self';"
    " img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    **_NOSNIFF,
}
_STRING = {"type": "string"}
_EXAMPLE_OPERATION = "Acme BPO"
_TOKEN = {"in": "header", "name": wire.TOKEN_HEADER, "required": True, "schema": _STRING,
          "description": "The operation's token."}  # fmt: skip
_SERVER_HEADERS = [
    {"in": "header", "name": name, "required": False, "schema": _STRING,
     "description": "Server id some clients send; accepted and ignored."}
    for name in wire.SERVER_HEADERS
]  # fmt: skip


def _envelope(data: dict[str, Any], code: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["code", "error", "msg", "data"],
        "properties": {
            "code": code,
            "error": {"type": ["string", "null"]},
            "msg": _STRING,
            "data": {"type": "array", "items": data},
        },
    }


def _answer(code: int | str, msg: str, data: list[Any]) -> dict[str, Any]:
    """An example envelope; a refusal's ``error`` word comes from the contract."""
    error = None if code in (200, "200") else errors.ApiError(int(code), msg).error
    return {"summary": msg, "value": {"code": code, "error": error, "msg": msg, "data": data}}


def _refusal(status: int, messages: list[str]) -> dict[str, Any]:
    return {
        "description": " / ".join(messages),
        "content": {
            "application/json": {
                "schema": _envelope({}, {"type": "integer", "const": status}),
                "examples": {msg: _answer(status, msg, []) for msg in messages},
            }
        },
    }


def _record(fields: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": fields,
        "properties": {name: _STRING for name in fields},
    }


_ROW = _record(["operation", "description", "items", "date"])
_ANY_CODE = {"oneOf": [{"type": "integer", "const": 200}, {"type": "string", "const": "200"}]}
_AUTH_REFUSALS = {
    "401": _refusal(401, [errors.ENTER_TOKEN]),
    "403": _refusal(
        403,
        [
            errors.VALIDATE_TOKEN,
            errors.TOKEN_SCOPE,
            errors.TOKEN_LIMIT_EXCEEDED,
            errors.SIMULTANEOUS_REQUESTS.format(limit=2),
        ],
    ),
    "504": _refusal(504, [errors.TIME_LIMIT_EXCEEDED]),
}


def _query(name: str, schema: dict[str, Any], required: bool, description: str) -> dict[str, Any]:
    return {"in": "query", "name": name, "required": required, "schema": schema,
            "description": description}  # fmt: skip


def _report_operation(family: Family) -> dict[str, Any]:
    apis = [m.api for m in METERS if m.family is family]
    string_apis = [m.api for m in METERS if m.family is family and m.code_type is CodeType.STRING]
    parameters = [
        _query("api", {"type": "string", "enum": apis}, True, "The report wanted."),
        _TOKEN,
        *_SERVER_HEADERS,
    ]
    if family is Family.BILLING:
        parameters += [
            _query("detail", {"type": "string", "enum": ["daily"]}, False,
                   "One row per day instead of the month-to-date row."),
            _query("date_ini", {"type": "string", "format": "date"}, False,
                   "First day, inside the current month."),
            _query("date_end", {"type": "string", "format": "date"}, False,
                   "Last day, inside the current month."),
        ]  # fmt: skip
        data, msg = _ROW, messages.BILLING
        ivr_calls = next(m for m in METERS if m.api == "ivr_calls")
        row = {
            "operation": _EXAMPLE_OPERATION,
            "description": ivr_calls.description,
            "items": "35861",
            "date": "2026-11-24",
        }
        examples = {"ivr_calls": _answer(success_code(ivr_calls.code_type), msg, [row])}
    else:
        services = _record(["licenses", "pbx", *SERVICE_FLAGS])
        token_info = _record(
            ["description", "token_limit", "token_use_today", "all_token_today",
             "available_consumption_options"]
        )  # fmt: skip
        data, msg = {"oneOf": [services, token_info]}, messages.SERVICES
        code = {m.api: success_code(m.code_type) for m in METERS if m.family is family}
        examples = {
            "services": _answer(
                code["services"], msg, [services_record(40, 2, frozenset({"rsync"}))]
            ),
            "token_info": _answer(
                code["token_info"],
                msg,
                [
                    {
                        "description": "billing export",
                        "token_limit": "40000",
                        "token_use_today": "12",
                        "all_token_today": "31",
                        "available_consumption_options": "39988",
                    }
                ],
            ),
        }
    return {
        "summary": f"The {family.value} family",
        "description": f'`code` is the string "200" for {", ".join(string_apis)};'
        " the number 200 otherwise. Every value in `data` is a string.",
        "parameters": parameters,
        "security": [{"wolkvoxToken": []}],
        "responses": {
            "200": {
                "description": msg,
                "content": {
                    "application/json": {"schema": _envelope(data, _ANY_CODE), "examples": examples}
                },
            },
            "400": _refusal(
                400,
                [
                    errors.API_DOES_NOT_EXIST,
                    errors.PARAMETERS_REQUIRED,
                    errors.INVALID_PARAMETERS,
                    errors.CURRENT_MONTH_ONLY,
                    errors.RANGE_TOO_LONG.format(days=31),
                    errors.TOO_MANY_RECORDS.format(records=60000),
                    errors.RESULT_TOO_LARGE.format(megabytes=256),
                ],
            ),
            **_AUTH_REFUSALS,
        },
    }


_EVENT = {
    "type": "object",
    "required": ["id", "meter", "quantity", "time"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 128},
        "meter": {"type": "string", "enum": [m.api for m in BILLING_METERS]},
        "quantity": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]},
        "time": {"type": "string", "format": "date-time"},
        "attributes": {"type": "object"},
    },
}
_CORRECTION = {
    "type": "object",
    "required": ["id", "action"],
    "additionalProperties": False,
    "properties": {
        "id": _STRING,
        "action": {"type": "string", "enum": ["void", "amend"]},
        "quantity": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]},
        "reason": {"type": "string", "maxLength": 500},
    },
}
_EVENT_EXAMPLE = {
    "id": "cdr-991",
    "meter": "ivr_calls",
    "quantity": 12,
    "time": "2026-11-24T10:00:00-05:00",
    "attributes": {"campaign": "renewals"},
}
_CORRECTION_EXAMPLE = {
    "id": "cdr-991",
    "action": "amend",
    "quantity": 10,
    "reason": "two calls were test calls",
}
_UPLOAD_REFUSALS = {
    "400": _refusal(400, [errors.EVENTS_INVALID, errors.BODY_NOT_JSON, errors.PARAMETERS_REQUIRED]),
    "409": _refusal(409, [errors.EVENT_ID_CONFLICT]),
    "413": _refusal(
        413, [errors.UPLOAD_TOO_LARGE.format(limit=10000), errors.BODY_TOO_LARGE.format(limit="N")]
    ),
    "415": _refusal(415, [errors.UNSUPPORTED_CONTENT]),
    **_AUTH_REFUSALS,
}


def _ok_object(msg: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "application/json": {
            "schema": _envelope({"type": "object"}, {"const": 200}),
            "examples": {"ok": _answer(200, msg, data)},
        }
    }


def _upload(
    key: str,
    item: dict[str, Any],
    example: dict[str, Any],
    summary: str,
    msg: str,
    summary_row: dict[str, Any],
    **extra: dict[str, Any],
) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [_TOKEN],
        "security": [{"wolkvoxToken": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": [key],
                        "properties": {key: {"type": "array", "items": item, "maxItems": 10000}},
                    },
                    "example": {key: [example]},
                },
                "application/x-ndjson": {
                    "schema": _STRING,
                    "example": orjson.dumps(example).decode() + "\n",
                },
            },
        },
        "responses": {
            "200": {"description": msg, "content": _ok_object(msg, [summary_row])},
            **_UPLOAD_REFUSALS,
            **extra,
        },
    }


def _plain(summary: str, media: str, example: Any) -> dict[str, Any]:
    content = {media: {"example": example}}
    return {"summary": summary, "responses": {"200": {"description": "OK", "content": content}}}


@cache
def document() -> dict[str, Any]:
    up = {"status": "ok"}
    not_ready = {"status": "unavailable", "reason": "database unreachable"}
    probe_refusal = {
        "503": {"description": "not ready", "content": {"application/json": {"example": not_ready}}}
    }
    metrics = _plain(
        "Prometheus metrics",
        "text/plain",
        "# TYPE voxmeter_requests_total counter\n"
        'voxmeter_requests_total{path="/api/v2/billing.php",status="200"} 42\n',
    )
    metrics["security"] = [{}, {"metricsToken": []}]  # a token only when one is configured
    metrics["responses"]["401"] = _refusal(401, [errors.METRICS_TOKEN])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "voxmeter",
            "version": __version__,
            "description": "Usage metering and billing reports speaking the wolkvox API v2"
            " contract. Every answer of the /api/v2 endpoints is the envelope"
            " {code, error, msg, data}, with the HTTP status equal to code.",
        },
        "components": {
            "securitySchemes": {
                "wolkvoxToken": {"type": "apiKey", "in": "header", "name": wire.TOKEN_HEADER},
                # Only when VOXMETER_METRICS_TOKEN is set.
                "metricsToken": {"type": "http", "scheme": "bearer"},
                **admin_docs.SECURITY_SCHEMES,
            }
        },
        "paths": {
            wire.BILLING_PATH: {"get": _report_operation(Family.BILLING)},
            wire.INFORMATION_PATH: {"get": _report_operation(Family.INFORMATION)},
            wire.EVENTS_PATH: {
                "post": _upload("events", _EVENT, _EVENT_EXAMPLE,
                                "Record a batch of usage events (all or none)",
                                messages.EVENTS_RECORDED, {"received": 1, "accepted": 1,
                                "duplicates": 0, "duplicate_indexes": []}),
                "get": {
                    "summary": "Recent accepted or refused events of the token's operation",
                    "parameters": [
                        _TOKEN,
                        _query("view", {"type": "string", "enum": ["accepted", "rejected"]},
                               False, "Accepted events (default) or refused ones."),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                               False, "How many, newest first (100)."),
                    ],
                    "security": [{"wolkvoxToken": []}],
                    "responses": {
                        "200": {"description": "records found", "content": _ok_object(
                            messages.RECORDS_FOUND.format(count=1), [{
                                "id": "cdr-991", "meter": "ivr_calls", "quantity": "12",
                                "counted": "12", "state": "counted",
                                "time": "2026-11-24T15:00:00+00:00",
                                "received_at": "2026-11-24T15:00:02+00:00"}])},
                        "400": _refusal(400, [errors.INVALID_PARAMETERS]),
                        **_AUTH_REFUSALS,
                    },
                },
            },
            wire.CORRECTIONS_PATH: {
                "post": _upload("corrections", _CORRECTION, _CORRECTION_EXAMPLE,
                                "Void or amend events by id", messages.CORRECTIONS_APPLIED,
                                {"applied": 1, "unchanged": 0, "results": ["applied"]},
                                **{"404": _refusal(404, [errors.EVENTS_UNKNOWN])}),
            },
            wire.METRICS_PATH: {"get": metrics},
            wire.HEALTH_PATH: {"get": _plain("The process answers", "application/json", up)},
            wire.READY_PATH: {
                "get": _plain("Database reachable, schema current", "application/json", up)
                | {"responses": {"200": {"description": "ready", "content": {
                    "application/json": {"example": up}}}, **probe_refusal}}},
            wire.OPENAPI_PATH: {"get": _plain("This document", "application/json", {
                "openapi": "3.1.0", "info": {"title": "voxmeter", "version": __version__}})},
            wire.DOCS_PATH: {"get": _plain("This document as an interactive page", "text/html",
                                           _PAGE)},
            DOCS_ASSETS_PATH: {"get": {
                "summary": "The page's script, stylesheet, and Swagger UI's licence and notice",
                "parameters": [{"in": "path", "name": "file", "required": True,
                                "schema": {"type": "string", "enum": list(_ASSETS)}}],
                "responses": {
                    "200": {"description": "the file", "content": {
                        media.split(";")[0]: {} for _, media in _ASSETS.values()}
                        | {"text/plain": {"example": _ASSETS["NOTICE"][0].read_text()}}},
                    "404": _refusal(404, [errors.NOT_FOUND])}}},
            **admin_docs.paths(),
        },
    }  # fmt: skip


async def openapi_json(request: Request) -> Response:
    return Response(orjson.dumps(document()), media_type="application/json")


async def docs(request: Request) -> HTMLResponse:
    """The interactive reference: the vendored Swagger UI rendering /openapi.json."""
    return HTMLResponse(_PAGE, headers=_PAGE_HEADERS)


async def docs_asset(request: Request) -> Response:
    """One of the page's own files; nothing else is served from here."""
    asset = _ASSETS.get(request.path_params["file"])
    if asset is None:
        raise errors.not_found()
    path, media_type = asset
    return FileResponse(
        path, media_type=media_type, headers={"Cache-Control": "max-age=3600", **_NOSNIFF}
    )
