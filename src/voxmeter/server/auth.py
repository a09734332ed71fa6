"""The ``wolkvox-token`` header: read it, or answer the platform's 401."""

from __future__ import annotations

from starlette.requests import Request

from voxmeter.contract import errors
from voxmeter.contract.wire import TOKEN_HEADER
from voxmeter.domain.models import Principal, TokenScope
from voxmeter.server.runtime import Runtime


def require_token(value: str | None) -> str:
    """The token the caller sent, or the platform's 401 when there is none."""
    secret = (value or "").strip()
    if not secret:
        raise errors.enter_token()
    return secret


async def authenticate(request: Request, scope: TokenScope) -> tuple[Runtime, Principal]:
    """The runtime and the caller's principal, for the Starlette endpoints."""
    runtime: Runtime = request.app.state.runtime
    secret = require_token(request.headers.get(TOKEN_HEADER))
    return runtime, await runtime.services.access.authenticate(secret, scope)
