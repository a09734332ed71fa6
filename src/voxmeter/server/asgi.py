"""Plain-ASGI plumbing for the report endpoints, the hot path of the service.

The report calls skip Starlette's Request and Response objects: on this
path their cost is of the same order as the database work (see bench/).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl

from starlette.types import Scope, Send

from voxmeter.contract import envelope
from voxmeter.contract.errors import ApiError

Query = Mapping[str, list[str]]

_JSON = (b"content-type", b"application/json")


def parse_query(raw: bytes) -> dict[str, list[str]]:
    """Every parameter of a query string with all its values, as Starlette reads them."""
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
    raw_headers = [_JSON, (b"content-length", str(len(body)).encode())]
    if headers:
        raw_headers.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def send_failure(send: Send, error: ApiError) -> None:
    await send_json(send, error.status, envelope.failure(error), error.headers)
