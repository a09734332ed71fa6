"""The ``wolkvox-token`` header, checked against the stored hash."""

from __future__ import annotations

from starlette.requests import Request

from voxmeter.contract import errors
from voxmeter.metering import tokens
from voxmeter.metering.models import Principal, Scope
from voxmeter.server.runtime import Runtime

TOKEN_HEADER = "wolkvox-token"


def require_token(value: str | None) -> str:
    """The token the caller sent, or the platform's 401 when there is none."""
    secret = (value or "").strip()
    if not secret:
        raise errors.enter_token()
    return secret


def presented_token(request: Request) -> str:
    return require_token(request.headers.get(TOKEN_HEADER))


async def authenticate(runtime: Runtime, secret: str, scope: Scope) -> Principal:
    """The caller's principal; 403 for an unknown, revoked or wrong-scope token."""
    token_id = tokens.token_id_of(secret)
    credential = None if token_id is None else await runtime.store.find_credential(token_id)
    if credential is None or not tokens.matches(secret, credential.secret_hash):
        raise errors.validate_token()
    if credential.principal.token.scope is not scope:
        raise errors.wrong_scope()
    return credential.principal
