"""Opt-in CORS (``VOXMETER_CORS_ORIGINS``): browser pages on the listed origins may call.

Off by default, and then not in the request path at all (see app.py). A
request whose ``Origin`` is not listed is served exactly as without CORS: the
browser, not the server, withholds the answer from the page.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxmeter.contract.wire import TOKEN_HEADER
from voxmeter.server.responses import header

ALLOWED_METHODS = "GET, HEAD, POST, OPTIONS"
ALLOWED_HEADERS = f"{TOKEN_HEADER}, content-type, authorization, x-request-id"
# What a page may read of an answer beyond the safelisted headers.
EXPOSED_HEADERS = (
    "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, X-Request-Id"
)
# Browsers cache a preflight's answer this long (seconds).
PREFLIGHT_MAX_AGE = "600"

_ORIGIN = b"origin"
_REQUESTED_METHOD = b"access-control-request-method"


class Cors:
    """CORS headers for the allowed origins, and their preflight requests answered 204."""

    def __init__(self, app: ASGIApp, origins: frozenset[str]) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = header(scope, _ORIGIN) if scope["type"] == "http" else None
        if origin is None or origin not in self.origins:
            await self.app(scope, receive, send)
            return
        allowed = [
            (b"access-control-allow-origin", origin.encode()),
            (b"vary", b"Origin"),
        ]
        if scope["method"] == "OPTIONS" and header(scope, _REQUESTED_METHOD) is not None:
            preflight = [
                *allowed,
                (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": preflight})
            await send({"type": "http.response.body", "body": b""})
            return
        exposed = (b"access-control-expose-headers", EXPOSED_HEADERS.encode())

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *allowed, exposed]
            await send(message)

        await self.app(scope, receive, with_cors)
