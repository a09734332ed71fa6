"""Who calls the admin API: an admin key (``Authorization: Bearer``) or a browser session.

A session travels in an HttpOnly, SameSite=Strict cookie (Secure over TLS);
every unsafe method on a session must also carry the session's CSRF token in
``X-CSRF-Token``, which a page of another site cannot read or set. Calls with
an admin key carry no cookie, so they need no CSRF token.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from voxmeter.contract import errors
from voxmeter.domain.admins import Role
from voxmeter.services.admins import Caller, Session, login_required
from voxmeter.services.console import ConsoleServices

SESSION_COOKIE = "voxmeter_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def console_of(request: Request) -> ConsoleServices:
    console: ConsoleServices = request.app.state.console
    return console


async def session_caller(request: Request) -> Caller | None:
    """The caller of the request's session cookie, or None without a valid one."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return await console_of(request).admins.by_session(cookie)
    except errors.ApiError:
        return None


async def admin_caller(request: Request, role: Role) -> tuple[ConsoleServices, Caller]:
    """The caller, checked for ``role``: 401 if unknown, 403 for a CSRF or role refusal."""
    console = console_of(request)
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise login_required()
        caller = await console.admins.by_key(secret.strip())
    else:
        found = await session_caller(request)
        if found is None:
            raise login_required()
        caller = found
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            assert caller.csrf is not None
            if not hmac.compare_digest(sent.encode(), caller.csrf.encode()):
                raise errors.ApiError(403, errors.CSRF_FAILED)
    caller.require(role)
    return console, caller


def set_session_cookie(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session.cookie,
        # A lifetime rather than a date: the browser's clock need not agree with ours.
        max_age=int(session.lifetime.total_seconds()),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
