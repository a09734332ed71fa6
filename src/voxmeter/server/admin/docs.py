"""The admin API's and the console's part of the OpenAPI document."""

from __future__ import annotations

from typing import Any

from voxmeter.contract import errors, messages
from voxmeter.server.admin.api import PREFIX

_SCHEMA = {
    "type": "object",
    "required": ["code", "error", "msg", "data"],
    "properties": {"code": {}, "error": {}, "msg": {"type": "string"}, "data": {"type": "array"}},
}


def _envelope(status: int, msg: str) -> dict[str, Any]:
    """The envelope with one example answer; a refusal's ``error`` word from the contract."""
    error = None if status == 200 else errors.ApiError(status, msg).error
    example: dict[str, Any] = {"code": status, "error": error, "msg": msg, "data": []}
    return {"application/json": {"schema": _SCHEMA, "example": example}}


_REFUSALS = {
    str(status): {"description": text, "content": _envelope(status, msg)}
    for status, text, msg in (
        (400, "invalid input", errors.INVALID_PARAMETERS),
        (401, "no valid admin key or session", errors.ADMIN_LOGIN_REQUIRED),
        (403, "the role does not allow it, or the CSRF token is missing",
         errors.ADMIN_ROLE_REQUIRED.format(role="ADMIN")),
        (404, "no such operation, token or resource", errors.NOT_FOUND),
        (409, "already exists or already done",
         errors.OPERATION_EXISTS.format(name="Acme BPO")),
        (413, "body too large", errors.BODY_TOO_LARGE.format(limit=1048576)),
    )
}  # fmt: skip
_BODY = {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, description: str, many: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if many:
        schema = {"type": "array", "items": schema}
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def _call(
    summary: str,
    role: str,
    params: list[dict[str, Any]] | None = None,
    body: bool = False,
    csv: bool = False,
    files: bool = False,
    done: str = messages.RECORDS_FOUND.format(count=0),
) -> dict[str, Any]:
    """``done`` is the success message, a listing's unless the call changes something."""
    ok: dict[str, Any] = {"description": "done", "content": _envelope(200, done)}
    if csv:
        ok["content"]["text/csv"] = {}
    if files:
        ok["description"] = "done; a file (Content-Disposition: attachment) for csv and pdf"
        ok["content"]["text/csv"] = {}
        ok["content"]["application/pdf"] = {}
    operation: dict[str, Any] = {
        "summary": summary,
        "description": f"Needs the {role} role (an admin key, or a console session whose"
        " unsafe calls carry X-CSRF-Token). Operation tokens are refused.",
        "tags": ["admin"],
        "security": [{"adminKey": []}, {"adminSession": []}],
        "parameters": params or [],
        "responses": {"200": ok, **_REFUSALS},
    }
    if body:
        operation["requestBody"] = _BODY
    return operation


def _page(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": ["console"],
        "parameters": params or [],
        "responses": {
            "200": {
                "description": "the page",
                "content": {"text/html": {"example": "<!doctype html><html lang=en>…</html>"}},
            },
            "303": {"description": "to the login page, without a session"},
            "307": {"description": "to the console"},
            "403": {"description": "refused", "content": {"text/html": {}}},
            "404": {"description": "no such page", "content": {"text/html": {}}},
        },
    }


SECURITY_SCHEMES = {
    "adminKey": {"type": "http", "scheme": "bearer", "description": "An admin key, vxa_…"},
    "adminSession": {"type": "apiKey", "in": "cookie", "name": "voxmeter_session"},
}


def paths() -> dict[str, Any]:
    name, token = _path("name"), _path("token_id")
    month = _query("month", "YYYY-MM (default: the operation's current month)")
    limit = _query("limit", "how many, newest first (1 to 1000, default 100)")
    op = f"{PREFIX}/operations/{{name}}"
    book_name, number = _path("book"), _path("number")
    book, statement = f"{PREFIX}/price-books/{{book}}", f"{PREFIX}/statements/{{number}}"
    export_format = _query("format", "json (default), csv or pdf")
    return {
        f"{PREFIX}/session": {
            "post": _call("Log in with a name and password: sets the session cookie and"
                          " returns the CSRF token", "no", body=True, done="LOGGED IN")
                    | {"security": []},
            "delete": _call("Log out", "viewer", done="LOGGED OUT"),
        },
        f"{PREFIX}/whoami": {"get": _call("The caller's identity", "viewer")},
        f"{PREFIX}/identities": {
            "get": _call("Admin identities", "owner"),
            "post": _call("Create a person or API key (name, role, kind): secret shown once",
                          "owner", body=True, done="ADMIN CREATED"),
        },
        f"{PREFIX}/identities/{{name}}/disable": {"post": _call(
            "Disable a person or API key: its password, key and sessions stop working",
            "owner", [_path("name")], done="ADMIN DISABLED")},
        f"{PREFIX}/overview": {"get": _call(
            "Every operation: month to date per meter, same day last month, calls today",
            "viewer")},
        f"{PREFIX}/operations": {
            "get": _call("Every operation", "viewer"),
            "post": _call("Create an operation", "admin", body=True, done="OPERATION CREATED"),
        },
        op: {"get": _call("One operation", "viewer", [name]),
             "patch": _call("Change licenses, PBX, services, time zone", "admin", [name],
                            body=True, done="OPERATION CHANGED")},
        f"{op}/archive": {"post": _call("Archive the operation, revoking its tokens", "admin",
                                        [name], done="OPERATION ARCHIVED")},
        f"{op}/portal-link": {"post": _call("A signed, expiring client-portal link", "admin",
                                            [name], done="PORTAL LINK CREATED")},
        f"{op}/tokens": {
            "get": _call("Tokens with today's use", "viewer", [name]),
            "post": _call("Create a token (scope, description): secret shown once", "admin",
                          [name], body=True, done="TOKEN CREATED"),
        },
        f"{op}/tokens/{{token_id}}": {"delete": _call("Revoke a token", "admin", [name, token],
                                                      done="TOKEN REVOKED")},
        f"{PREFIX}/tokens/{{token_id}}": {"delete": _call(
            "Revoke a token by its id alone", "admin", [token], done="TOKEN REVOKED")},
        f"{op}/events": {"get": _call("Search accepted events", "viewer", [
            name, _query("meter", "billing meter"), _query("id", "event id"),
            _query("since", "ISO 8601 with offset"), _query("until", "ISO 8601 with offset"),
            limit])},
        f"{op}/rejections": {"get": _call("Refused events and why", "viewer", [name, limit])},
        f"{op}/corrections": {"post": _call("Void or amend events ({corrections: [...]})",
                                            "admin", [name], body=True)},
        f"{PREFIX}/usage": {"get": _call(
            "Usage for a month: per operation, meter and day, or per event attribute"
            " (group_by); never spends an operation's quota", "viewer", [
                month, _query("operation", "operation names (default: all)", many=True),
                _query("meter", "billing meters (default: all)", many=True),
                _query("group_by", "an event attribute, e.g. campaign"),
                _query("format", "json (default) or csv")], csv=True)},
        f"{PREFIX}/audit": {"get": _call("The audit log, newest first", "viewer", [limit])},
        f"{PREFIX}/price-books": {
            "get": _call("Price books with every version", "viewer"),
            "post": _call("Create a price book (name, currency, breakdown_attribute)", "admin",
                          body=True),
        },
        book: {"get": _call("One price book with every version", "viewer", [book_name])},
        f"{book}/prices": {"post": _call(
            "Price a meter from a month on (meter, from YYYY-MM, unit_price or tiers"
            " [{up_to, unit_price}], model flat|graduated|volume, included); decimals as"
            " strings", "admin", [book_name], body=True)},
        f"{book}/terms": {"post": _call(
            "Tax rate, minimum and cap from a month on (from, tax_rate, minimum, cap;"
            " cap null removes it)", "admin", [book_name], body=True)},
        f"{op}/subscription": {"put": _call(
            "Bill the operation on a price book ({price_book})", "admin", [name], body=True)},
        f"{op}/statement-preview": {"get": _call(
            "The current month so far, rated as it would close (not kept)", "viewer",
            [name, export_format], files=True)},
        f"{PREFIX}/statements": {"get": _call("Closed statements", "viewer", [
            _query("operation", "one operation's only"), _query("month", "YYYY-MM")])},
        f"{PREFIX}/statements/close": {"post": _call(
            "Close a month ({month, operation?}) for every operation or one: one numbered"
            " statement each, once; lists those already closed, not due or not billable",
            "admin", body=True)},
        statement: {"get": _call("One statement, as it was closed", "viewer", [number])},
        f"{statement}/lines": {"get": _call(
            "Each line of a statement with the ledger events behind it", "viewer", [number])},
        f"{statement}/export": {"get": _call(
            "A statement as a file: the kept JSON, CSV or PDF", "viewer",
            [number, export_format], files=True)},
        f"{PREFIX}/caps": {
            "get": _call("Hard caps on month-to-date usage", "viewer"),
            "put": _call("Cap a meter for an operation ({operation, meter, quantity}, the"
                         " quantity a string in the meter's units), replacing any cap", "admin",
                         body=True, done="CAP SET"),
        },
        f"{PREFIX}/alert-rules": {
            "get": _call("Alert rules (operation null: every operation)", "viewer"),
            "post": _call("Add a rule ({meter, levels, operation?}): levels are quantities"
                          ' ("9000") or shares of the cap ("80%")', "admin", body=True,
                          done="RULE ADDED"),
        },
        f"{PREFIX}/alerts": {"get": _call("Alerts recorded (levels crossed and re-armed)",
                                          "viewer", [limit])},
        f"{PREFIX}/webhooks": {
            "get": _call("Webhook endpoints (never their secrets)", "viewer"),
            "post": _call("Add an endpoint ({url}): its signing secret is shown once", "admin",
                          body=True, done="WEBHOOK ADDED"),
        },
        f"{PREFIX}/webhooks/{{endpoint_id}}/rotate": {"post": _call(
            "A new signing secret, shown once; the previous one keeps signing", "admin",
            [_path("endpoint_id")], done="WEBHOOK ROTATED")},
        f"{PREFIX}/deliveries": {"get": _call("Webhook deliveries and their outcome",
                                              "viewer", [limit])},
        f"{PREFIX}/deliveries/{{delivery_id}}/replay": {"post": _call(
            "Send a delivery again (delivered or failed)", "admin", [_path("delivery_id")],
            done="DELIVERY REPLAYED")},
        "/": {"get": _page("Leads to the console")},
        "/console": {"get": _page("Console: overview of every operation")},
        "/console/login": {"get": _page("Console: log in")},
        "/console/audit": {"get": _page("Console: audit log")},
        "/console/alerts": {"get": _page("Console: caps, rules, latest alerts and deliveries")},
        "/console/statements": {"get": _page("Console: closed statements, closing a month", [
            _query("operation", "one operation's only"), _query("month", "YYYY-MM")])},
        "/console/statements/{number}": {"get": _page(
            "Console: one statement, its lines with their events, downloads", [number])},
        "/console/operations/{name}": {"get": _page("Console: one operation", [name, month])},
        "/console/operations/{name}/events": {"get": _page(
            "Console: events, corrections, rejection debugger", [name])},
        "/console/static/{file}": {"get": _page("Console assets", [_path("file")])},
        "/console/static/vendor/{file}": {"get": _page(
            "Vendored libraries and their licences", [_path("file")])},
        "/portal/{token}": {"get": _page("Client portal: one operation's usage, read-only",
                                         [_path("token"), month])},
    }  # fmt: skip
