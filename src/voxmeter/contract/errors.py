"""The platform's refusals: HTTP status, ``error`` word and upper-case ``msg``.

The status always equals the envelope's ``code``. Clients written for wolkvox
tell refusals apart by ``msg`` (every over-limit answer is a 403), so these
texts are part of the contract and must not be reworded.
"""

from __future__ import annotations

from typing import Any

_ERROR_WORDS = {
    400: "BAD REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    405: "METHOD NOT ALLOWED",
    408: "REQUEST TIMEOUT",
    409: "CONFLICT",
    413: "PAYLOAD TOO LARGE",
    414: "URI TOO LONG",
    415: "UNSUPPORTED MEDIA TYPE",
    429: "TOO MANY REQUESTS",
    431: "REQUEST HEADER FIELDS TOO LARGE",
    499: "CLIENT CLOSED REQUEST",
    500: "INTERNAL SERVER ERROR",
    503: "SERVICE UNAVAILABLE",
    504: "GATEWAY TIMEOUT",
    507: "INSUFFICIENT STORAGE",
}

# The vendor's documented messages.
API_DOES_NOT_EXIST = "THE API YOU WANT TO CONSULT DOES NOT EXIST"
PARAMETERS_REQUIRED = "SOME PARAMETERS ARE REQUIRED"
ENTER_TOKEN = "PLEASE ENTER THE WOLKVOX-TOKEN"
VALIDATE_TOKEN = "PLEASE VALIDATE TOKEN"
TOKEN_LIMIT_EXCEEDED = "TOKEN LIMIT EXCEEDED"
SIMULTANEOUS_REQUESTS = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN ({limit})"

# voxmeter's own, in the same style.
INVALID_PARAMETERS = "INVALID PARAMETERS"
METHOD_NOT_ALLOWED = "METHOD NOT ALLOWED"
NOT_FOUND = "THE RESOURCE YOU REQUESTED DOES NOT EXIST"
TOKEN_SCOPE = "THIS TOKEN IS NOT ALLOWED TO USE THIS API"
TIME_LIMIT_EXCEEDED = "THE API CONSUMPTION TIME LIMIT WAS EXCEEDED"
CURRENT_MONTH_ONLY = "THE QUERY OF THIS API IS ONLY MADE IN THE CURRENT MONTH"
RANGE_TOO_LONG = "THE LIMIT OF DAYS QUERIED IS {days}"
TOO_MANY_RECORDS = "THE RESULT EXCEEDS THE LIMIT OF {records} RECORDS"
RESULT_TOO_LARGE = "THE RESULT EXCEEDS THE LIMIT OF {megabytes} MB"
INTERNAL_ERROR = "AN INTERNAL ERROR OCCURRED"
# Never received (the client has gone); what logs and metrics record, as nginx does.
CLIENT_CLOSED = "THE CLIENT CLOSED THE REQUEST"
DATABASE_UNAVAILABLE = "THE DATABASE IS UNAVAILABLE, TRY AGAIN LATER"
STORAGE_FULL = "THE DATABASE HAS NO ROOM LEFT: EVENTS CANNOT BE STORED"
METRICS_TOKEN = "PLEASE SEND THE METRICS BEARER TOKEN"
# The connection layer (refused before a request reaches the application).
HEADERS_TOO_LARGE = "THE REQUEST HEADERS EXCEED THE LIMIT OF {limit} BYTES"
TOO_MANY_HEADERS = "THE REQUEST HAS MORE THAN {limit} HEADERS"
URI_TOO_LONG = "THE REQUEST URI EXCEEDS THE LIMIT OF {limit} BYTES"
HEADERS_TIMEOUT = "THE REQUEST HEADERS WERE NOT RECEIVED WITHIN {seconds} SECONDS"
BODY_TIMEOUT = "THE REQUEST BODY WAS NOT RECEIVED WITHIN {seconds} SECONDS"
TOO_MANY_CONNECTIONS = "TOO MANY CONNECTIONS, TRY AGAIN LATER"
MALFORMED_REQUEST = "THE REQUEST IS NOT VALID HTTP"
# Ingestion (voxmeter's own endpoints, in the platform's style).
BODY_TOO_LARGE = "THE BODY EXCEEDS THE LIMIT OF {limit} BYTES"
UPLOAD_TOO_LARGE = "THE UPLOAD EXCEEDS THE LIMIT OF {limit} RECORDS"
UPLOADS_BUSY = "TOO MANY UPLOADS AT ONCE, TRY AGAIN LATER"
BODY_TOO_COMPLEX = "THE BODY EXCEEDS THE LIMIT OF {limit} JSON VALUES"
UNSUPPORTED_CONTENT = "THE CONTENT TYPE MUST BE application/json OR application/x-ndjson"
BODY_NOT_JSON = "THE BODY IS NOT VALID JSON"
EVENTS_INVALID = "SOME EVENTS ARE INVALID"
EVENT_ID_CONFLICT = "SOME EVENT IDS WERE ALREADY USED FOR DIFFERENT EVENTS"
EVENTS_UNKNOWN = "SOME EVENTS DO NOT EXIST"
CAP_EXCEEDED = "THE BATCH WOULD TAKE {meter} PAST ITS CAP OF {cap} THIS MONTH"
# Administration (every entry point: CLI, admin API).
OPERATION_UNKNOWN = "NO OPERATION NAMED {name!r}"
OPERATION_EXISTS = "AN OPERATION NAMED {name!r} ALREADY EXISTS"
TOKEN_UNKNOWN = "NO ACTIVE TOKEN WITH ID {token_id!r}"
CAP_UNKNOWN = "NO CAP ON {meter} FOR {name!r}"
METER_NOT_SUMMED = "{meter} IS A GAUGE: CAPS AND ALERTS WATCH SUMMED METERS ONLY"
RULE_LEVELS_INVALID = "LEVELS MUST BE QUANTITIES OR PERCENTAGES (e.g. 500,800 or 80%,100%)"
WEBHOOK_URL_INVALID = "THE WEBHOOK URL MUST BE AN http:// OR https:// URL"
WEBHOOK_UNKNOWN = "NO WEBHOOK ENDPOINT WITH ID {endpoint_id}"
DELIVERY_UNKNOWN = "NO DELIVERY WITH ID {delivery_id}"
# The admin API and console.
ADMIN_LOGIN_REQUIRED = "AN ADMIN KEY OR SESSION IS REQUIRED"
ADMIN_LOGIN_FAILED = "THE NAME OR PASSWORD IS NOT VALID"
ADMIN_LOGIN_THROTTLED = "TOO MANY FAILED LOGINS; TRY AGAIN LATER"
ADMIN_ROLE_REQUIRED = "THIS ACTION NEEDS THE {role} ROLE"
CSRF_FAILED = "THE CSRF TOKEN IS MISSING OR DOES NOT MATCH"
IDENTITY_EXISTS = "AN ADMIN NAMED {name!r} ALREADY EXISTS"
IDENTITY_UNKNOWN = "NO ADMIN NAMED {name!r}"
IDENTITY_DISABLED = "THE ADMIN {name!r} IS ALREADY DISABLED"
OPERATION_ARCHIVED = "THE OPERATION {name!r} IS ALREADY ARCHIVED"
PORTAL_LINK_INVALID = "THIS PORTAL LINK IS NOT VALID OR HAS EXPIRED"
PORTAL_NOT_CONFIGURED = "PORTAL LINKS NEED VOXMETER_PORTAL_SECRET TO BE SET"
# Statements.
PRICE_BOOK_UNKNOWN = "NO PRICE BOOK NAMED {name!r}"
PRICE_BOOK_EXISTS = "A PRICE BOOK NAMED {name!r} ALREADY EXISTS"
STATEMENT_UNKNOWN = "NO STATEMENT NUMBERED {number}"
NOT_SUBSCRIBED = "THE OPERATION {name!r} IS NOT SUBSCRIBED TO A PRICE BOOK"
NO_PRICES_IN_FORCE = "THE PRICE BOOK {name!r} HAS NO VERSION IN FORCE IN {month}"
CURRENCY_CHANGE = "THE OPERATION {name!r} IS BILLED IN {currency}: ITS PRICE BOOK MUST BE TOO"
MONTH_CLOSED = (
    "{month} IS CLOSED FOR AN OPERATION ON THIS PRICE BOOK; PRICES MAY CHANGE FROM {next} ON"
)


class ApiError(Exception):
    """A refusal answered in the envelope with ``status`` as both HTTP status and code."""

    def __init__(
        self,
        status: int,
        msg: str,
        data: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.data: list[Any] = data if data is not None else []
        self.headers: dict[str, str] = headers or {}

    @property
    def error(self) -> str:
        return _ERROR_WORDS.get(self.status, "ERROR")

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.msg!r})"


def api_does_not_exist() -> ApiError:
    return ApiError(400, API_DOES_NOT_EXIST)


def parameters_required(*names: str) -> ApiError:
    return ApiError(400, PARAMETERS_REQUIRED, [{"parameter": name} for name in names])


def invalid_parameter(name: str, reason: str) -> ApiError:
    return ApiError(400, INVALID_PARAMETERS, [{"parameter": name, "reason": reason}])


def enter_token() -> ApiError:
    return ApiError(401, ENTER_TOKEN)


def validate_token() -> ApiError:
    return ApiError(403, VALIDATE_TOKEN)


def wrong_scope() -> ApiError:
    return ApiError(403, TOKEN_SCOPE)


def method_not_allowed(allowed: str) -> ApiError:
    return ApiError(405, METHOD_NOT_ALLOWED, headers={"Allow": allowed})


def not_found() -> ApiError:
    return ApiError(404, NOT_FOUND)
