"""Every answer in the envelope, from one place.

The report endpoints are plain ASGI (the hot path: Starlette's Request and
Response objects cost as much as the database work there, see bench/); the
rest are Starlette endpoints. Both build their bodies with
:mod:`voxmeter.contract.envelope` and map exceptions with :func:`refusal`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import Scope, Send

from voxmeter.contract import envelope, errors
from voxmeter.contract.meters import CodeType
from voxmeter.storage.ports import StoreFull, StoreUnavailable

log = logging.getLogger("voxmeter.server")

Query = Mapping[str, list[str]]

JSON_MEDIA_TYPE = "application/json; charset=utf-8"
# Every report answer is today's figure: never to be served from a cache.
_REPORT_HEADERS = (
    (b"content-type", JSON_MEDIA_TYPE.encode()),
    (b"cache-control", b"no-store"),
)


def refusal(exc: Exception, method: str, path: str) -> errors.ApiError:
    """The envelope error for any exception an endpoint let out; unexpected ones are logged."""
    if isinstance(exc, errors.ApiError):
        return exc
    if isinstance(exc, StoreUnavailable):
        # Already logged by the store, once per failure and without a traceback.
        return errors.ApiError(503, errors.DATABASE_UNAVAILABLE, headers={"Retry-After": "1"})
    if isinstance(exc, StoreFull):
        return errors.ApiError(507, errors.STORAGE_FULL)
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return errors.ApiError(500, errors.INTERNAL_ERROR)


# A refusal's details name what was wrong, never echo a refused body whole:
# this many problems are listed (then a count of the rest), and each text
# (an id, a reason quoting a meter name) is cut to this many characters.
MAX_DETAILS = 100
MAX_ECHOED_CHARS = 200


def bounded(error: errors.ApiError) -> errors.ApiError:
    """``error`` with its details capped as :data:`MAX_DETAILS` says."""
    data = error.data
    if not data:
        return error
    shown = [_shortened(item) for item in data[:MAX_DETAILS]]
    if len(data) > MAX_DETAILS:
        shown.append({"omitted": len(data) - MAX_DETAILS})
    return errors.ApiError(error.status, error.msg, shown, error.headers)


def _shortened(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHOED_CHARS else value[:MAX_ECHOED_CHARS] + "..."
    if isinstance(value, dict):
        return {key: _shortened(item) for key, item in value.items()}
    return value


# -- Starlette endpoints -------------------------------------------------------


class EnvelopeResponse(Response):
    media_type = JSON_MEDIA_TYPE


def success(
    code_type: CodeType,
    msg: str,
    data: Sequence[Any],
    headers: Mapping[str, str] | None = None,
) -> EnvelopeResponse:
    return EnvelopeResponse(envelope.success(code_type, msg, data), 200, headers=headers)


def failure(error: errors.ApiError) -> EnvelopeResponse:
    error = bounded(error)
    return EnvelopeResponse(envelope.failure(error), error.status, headers=error.headers)


# -- plain ASGI endpoints ------------------------------------------------------


def parse_query(raw: bytes, limit: int) -> dict[str, list[str]]:
    """Every parameter of a query string with all its values, as Starlette reads them.

    More than ``limit`` parameters are refused before any is parsed.
    """
    if raw.count(b"&") >= limit:
        raise errors.invalid_parameter("query", f"more than {limit} parameters in the query string")
    text = raw.decode("latin-1")
    query: dict[str, list[str]] = {}
    if "%" in text or "+" in text:
        pairs: Iterable[tuple[str, str]] = parse_qsl(text, keep_blank_values=True)
    else:
        pairs = (part.partition("=")[::2] for part in text.split("&") if part)
    for name, value in pairs:
        query.setdefault(name, []).append(value)
    return query


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` in lower case, as servers pass it)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def send_json(
    send: Send, status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> None:
    raw_headers = [*_REPORT_HEADERS, (b"content-length", str(len(body)).encode())]
    if headers:
        raw_headers.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def send_failure(send: Send, error: errors.ApiError) -> None:
    error = bounded(error)
    await send_json(send, error.status, envelope.failure(error), error.headers)
