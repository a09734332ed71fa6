"""The OpenAPI 3.1 document and a self-contained HTML page of it.

Generated from the meters catalogue and the contract's messages, so it
cannot drift from what the server answers; a test compares it with the
routes.
"""

from __future__ import annotations

import html
from functools import cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from voxmeter import __version__
from voxmeter.contract import errors, wire
from voxmeter.contract.envelope import BILLING_MSG
from voxmeter.contract.meters import BILLING_METERS, METERS, CodeType, Family
from voxmeter.contract.services import SERVICE_FLAGS
from voxmeter.server.admin import docs as admin_docs

_STRING = {"type": "string"}
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


def _refusal(status: int, messages: list[str]) -> dict[str, Any]:
    return {
        "description": " / ".join(messages),
        "content": {
            "application/json": {
                "schema": _envelope({}, {"type": "integer", "const": status}),
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
        data, msg = _ROW, BILLING_MSG
    else:
        services = _record(["licenses", "pbx", *SERVICE_FLAGS])
        token_info = _record(
            ["description", "token_limit", "token_use_today", "all_token_today",
             "available_consumption_options"]
        )  # fmt: skip
        data, msg = {"oneOf": [services, token_info]}, "1 records were found"
    return {
        "summary": f"The {family.value} family",
        "description": f'`code` is the string "200" for {", ".join(string_apis)};'
        " the number 200 otherwise. Every value in `data` is a string.",
        "parameters": parameters,
        "security": [{"wolkvoxToken": []}],
        "responses": {
            "200": {
                "description": msg,
                "content": {"application/json": {"schema": _envelope(data, _ANY_CODE)}},
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
_UPLOAD_REFUSALS = {
    "400": _refusal(400, [errors.EVENTS_INVALID, errors.BODY_NOT_JSON, errors.PARAMETERS_REQUIRED]),
    "409": _refusal(409, [errors.EVENT_ID_CONFLICT]),
    "413": _refusal(
        413, [errors.UPLOAD_TOO_LARGE.format(limit=10000), errors.BODY_TOO_LARGE.format(limit="N")]
    ),
    "415": _refusal(415, [errors.UNSUPPORTED_CONTENT]),
    **_AUTH_REFUSALS,
}


_OK_OBJECT = {"application/json": {"schema": _envelope({"type": "object"}, {"const": 200})}}


def _upload(
    key: str, item: dict[str, Any], summary: str, msg: str, **extra: dict[str, Any]
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
                    }
                },
                "application/x-ndjson": {"schema": _STRING},
            },
        },
        "responses": {
            "200": {
                "description": msg,
                "content": {
                    "application/json": {"schema": _envelope({"type": "object"}, {"const": 200})}
                },
            },
            **_UPLOAD_REFUSALS,
        },
    }


def _plain(summary: str, media: str) -> dict[str, Any]:
    return {"summary": summary, "responses": {"200": {"description": "OK", "content": {media: {}}}}}


@cache
def document() -> dict[str, Any]:
    probe_refusal = {"503": {"description": "not ready", "content": {"application/json": {}}}}
    metrics = _plain("Prometheus metrics", "text/plain")
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
                "post": _upload("events", _EVENT, "Record a batch of usage events (all or none)",
                                errors.EVENTS_RECORDED),
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
                        "200": {"description": "records found", "content": _OK_OBJECT},
                        "400": _refusal(400, [errors.INVALID_PARAMETERS]),
                        **_AUTH_REFUSALS,
                    },
                },
            },
            wire.CORRECTIONS_PATH: {
                "post": _upload("corrections", _CORRECTION, "Void or amend events by id",
                                errors.CORRECTIONS_APPLIED,
                                **{"404": _refusal(404, [errors.EVENTS_UNKNOWN])}),
            },
            wire.METRICS_PATH: {"get": metrics},
            wire.HEALTH_PATH: {"get": _plain("The process answers", "application/json")},
            wire.READY_PATH: {
                "get": _plain("Database reachable, schema current", "application/json")
                | {"responses": {"200": {"description": "ready"}, **probe_refusal}}},
            wire.OPENAPI_PATH: {"get": _plain("This document", "application/json")},
            wire.DOCS_PATH: {"get": _plain("This document as a page", "text/html")},
            **admin_docs.paths(),
        },
    }  # fmt: skip


async def openapi_json(request: Request) -> Response:
    return Response(orjson.dumps(document()), media_type="application/json")


async def docs(request: Request) -> HTMLResponse:
    """A page of the document, with no assets to fetch (works offline)."""
    parts = [
        "<!doctype html><meta charset=utf-8><title>voxmeter API</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}code{background:#f3f3f3;padding:0 .2em}td,th{border-bottom:1px solid"
        " #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}</style>",
        f"<h1>voxmeter {html.escape(__version__)}</h1>",
        f"<p>{html.escape(document()['info']['description'])}"
        " The machine-readable document is <a href=/openapi.json>/openapi.json</a>.</p>",
    ]
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            parts.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>")
            parts.append(f"<p>{html.escape(operation.get('summary', ''))}</p>")
            if operation.get("description"):
                parts.append(f"<p>{html.escape(operation['description'])}</p>")
            rows = "".join(
                f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p['in']}</td>"
                f"<td>{'required' if p.get('required') else ''}</td>"
                f"<td>{html.escape(', '.join(map(str, p['schema'].get('enum', []))))}</td>"
                f"<td>{html.escape(p.get('description', ''))}</td></tr>"
                for p in operation.get("parameters", [])
            )
            if rows:
                parts.append(f"<table><tr><th>parameter<th>in<th><th>values<th></tr>{rows}</table>")
            answers = "".join(
                f"<tr><td>{status}</td><td>{html.escape(answer['description'])}</td></tr>"
                for status, answer in operation["responses"].items()
            )
            parts.append(f"<table><tr><th>status<th>answer</tr>{answers}</table>")
    return HTMLResponse("".join(parts))
