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


async def authenticate(
    runtime: Runtime, secret: str, scope: Scope, *, cached: bool = False
) -> Principal:
    """The caller's principal; 403 for an unknown, revoked or wrong-scope token.

    ``cached`` may take the principal from the worker's credential cache:
    only for calls that are then admitted, since admission is what proves a
    cached principal still current (see :mod:`voxmeter.server.credentials`).
    """
    token_id = tokens.token_id_of(secret)
    if token_id is None:
        raise errors.validate_token()
    credential = runtime.credentials.get(token_id) if cached else None
    if credential is None:
        credential = await runtime.store.find_credential(token_id)
        if credential is not None and cached:
            runtime.credentials.put(token_id, credential)
    if credential is None or not tokens.matches(secret, credential.secret_hash):
        raise errors.validate_token()
    if credential.principal.token.scope is not scope:
        raise errors.wrong_scope()
    return credential.principal


async def reread(runtime: Runtime, principal: Principal) -> Principal:
    """The principal as stored now (after admission found it changed); 403 if revoked."""
    runtime.credentials.forget(principal.token.id)
    credential = await runtime.store.find_credential(principal.token.id)
    if credential is None:
        raise errors.validate_token()
    runtime.credentials.put(principal.token.id, credential)
    return credential.principal
