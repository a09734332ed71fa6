"""Admin identities, browser sessions and the audit log.

Every admin mutation, from the admin API, the console or ``voxmeter admin``,
goes through :meth:`AdminService.audited` so it is written to the audit log
with who did it, when, and the target's state before and after.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson

from voxmeter.contract import errors
from voxmeter.domain import admins
from voxmeter.domain.admins import AuditEntry, Identity, IdentityKind, Role
from voxmeter.domain.clock import Clock
from voxmeter.storage.admin import AdminStore, IdentityExists

T = TypeVar("T")

# Who acts when an identity is made from the command line, with database access.
COMMAND_LINE = "command line"

MAX_NAME = 100

# Failed logins allowed in a sliding window before further attempts are refused:
# few per name (password guessing), more per address (an office behind one NAT).
LOGIN_FAILURES_PER_NAME = 5
LOGIN_FAILURES_PER_ADDRESS = 20
LOGIN_WINDOW_SECONDS = 15 * 60
# How many names and addresses the limiter remembers; the least recently failed go first.
LOGIN_KEYS_REMEMBERED = 10_000


class LoginThrottle:
    """Failed logins per key in a sliding window, in bounded memory.

    Each key keeps at most its limit of failure times, and at most
    ``remembered`` keys are kept, so a flood of made-up names cannot grow it
    without end. Held per process: with several workers each counts its own.
    """

    def __init__(self, limit: int, window: timedelta, remembered: int) -> None:
        self._limit = limit
        self._window = window
        self._remembered = remembered
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()

    def wait(self, key: str, now: datetime) -> timedelta | None:
        """How long ``key`` must wait before trying again, or None if it may try now."""
        failures = self._failures.get(key)
        if failures is None or len(failures) < self._limit:
            return None
        opens = failures[0] + self._window
        return opens - now if opens > now else None

    def failed(self, key: str, now: datetime) -> None:
        failures = self._failures.pop(key, None) or deque(maxlen=self._limit)
        failures.append(now)
        self._failures[key] = failures
        while len(self._failures) > self._remembered:
            self._failures.popitem(last=False)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)


@dataclass(frozen=True, slots=True)
class Session:
    """A browser session just opened: the cookie's value exists only here."""

    identity: Identity
    cookie: str
    csrf: str
    expires: datetime
    lifetime: timedelta


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling the admin API, and the CSRF token their session expects (if any)."""

    identity: Identity
    csrf: str | None = None

    @property
    def name(self) -> str:
        return self.identity.name

    def require(self, role: Role) -> None:
        """403 unless the caller's role allows what ``role`` allows."""
        if not self.identity.role.allows(role):
            raise errors.ApiError(403, errors.ADMIN_ROLE_REQUIRED.format(role=role.value.upper()))


def login_required() -> errors.ApiError:
    return errors.ApiError(401, errors.ADMIN_LOGIN_REQUIRED)


class AdminService:
    def __init__(self, store: AdminStore, clock: Clock, session_lifetime: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._session_lifetime = session_lifetime
        window = timedelta(seconds=LOGIN_WINDOW_SECONDS)
        self._by_name = LoginThrottle(LOGIN_FAILURES_PER_NAME, window, LOGIN_KEYS_REMEMBERED)
        self._by_address = LoginThrottle(LOGIN_FAILURES_PER_ADDRESS, window, LOGIN_KEYS_REMEMBERED)

    # -- identities -----------------------------------------------------------

    async def create(
        self, actor: str, name: str, role: Role, kind: IdentityKind
    ) -> tuple[Identity, str]:
        """A new person (with a generated password) or API key, and its secret, shown once."""
        name = name.strip()
        if not 1 <= len(name) <= MAX_NAME or not name.isprintable():
            raise errors.invalid_parameter("name", f"1 to {MAX_NAME} printable characters")
        if kind is IdentityKind.USER:
            key_id, secret = None, admins.new_password()
            stored = admins.password_hash(secret)
        else:
            key_id, secret = admins.mint_key()
            stored = admins.key_hash(secret)
        try:
            identity = await self._store.create_identity(
                name, role, kind, key_id, stored, self._clock()
            )
        except IdentityExists:
            raise errors.ApiError(409, errors.IDENTITY_EXISTS.format(name=name)) from None
        await self.record(actor, "identity.create", name, None, identity_view(identity))
        return identity, secret

    async def identities(self) -> list[Identity]:
        return await self._store.identities()

    async def disable(self, actor: str, name: str) -> Identity:
        """Disable ``name``: its password, key and sessions stop working at once."""
        disabled = await self._store.disable_identity(name, self._clock())
        if disabled is None:
            known = any(identity.name == name for identity in await self._store.identities())
            message = errors.IDENTITY_DISABLED if known else errors.IDENTITY_UNKNOWN
            raise errors.ApiError(409 if known else 404, message.format(name=name))
        before = identity_view(dataclasses.replace(disabled, disabled_at=None))
        await self.record(actor, "identity.disable", name, before, identity_view(disabled))
        return disabled

    # -- authentication -------------------------------------------------------

    async def by_key(self, secret: str) -> Caller:
        """The caller an admin key names; 401 for anything else (an operation token too)."""
        key_id = admins.key_id_of(secret)
        found = None if key_id is None else await self._store.key(key_id)
        if found is None or not admins.key_matches(secret, found[1]):
            raise login_required()
        return Caller(found[0])

    async def by_session(self, cookie: str) -> Caller:
        found = await self._store.session(admins.session_hash(cookie), self._clock())
        if found is None:
            raise login_required()
        return Caller(found[0], csrf=found[1])

    async def login(self, name: str, password: str, address: str) -> Session:
        """A new session (always a new id, so none planted beforehand survives).

        401 if refused; 429 once the name or the client ``address`` has failed
        too often lately, before the password is even looked at.
        """
        now = self._clock()
        # Cut to one past the longest possible name: a long guess costs no more
        # memory, and still counts apart from every real name.
        name_key = name[: MAX_NAME + 1]
        waits = [self._by_name.wait(name_key, now), self._by_address.wait(address, now)]
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            seconds = str(max(1, math.ceil(wait.total_seconds())))
            raise errors.ApiError(
                429, errors.ADMIN_LOGIN_THROTTLED, headers={"Retry-After": seconds}
            )
        found = await self._store.user(name)
        # The hash is checked even for an unknown name, so timing does not tell names apart.
        stored = admins.DECOY_HASH if found is None else found[1]
        if not admins.password_matches(password, stored) or found is None:
            self._by_name.failed(name_key, now)
            self._by_address.failed(address, now)
            raise errors.ApiError(401, errors.ADMIN_LOGIN_FAILED)
        # The name's count starts again; the address's does not, or an attacker
        # with one account of their own could reset it between guesses at others.
        self._by_name.forget(name_key)
        identity = found[0]
        cookie, hashed, csrf = admins.new_session()
        # Expired sessions open nothing, but would pile up: each login sweeps them away.
        await self._store.end_expired_sessions(now)
        expires = now + self._session_lifetime
        await self._store.create_session(hashed, identity.id, csrf, now, expires)
        await self.record(identity.name, "session.login", identity.name, None, None)
        return Session(identity, cookie, csrf, expires, self._session_lifetime)

    async def logout(self, cookie: str) -> None:
        await self._store.end_session(admins.session_hash(cookie))

    # -- audit ----------------------------------------------------------------

    async def record(self, actor: str, action: str, target: str, before: Any, after: Any) -> None:
        await self._store.append_audit(
            self._clock(), actor, action, target, _json(before), _json(after)
        )

    async def audited(
        self,
        caller: Caller,
        action: str,
        target: str,
        before: Any,
        change: Callable[[], Awaitable[T]],
        after: Callable[[T], Any],
    ) -> T:
        """Run ``change``, then log ``before`` and ``after(result)``; a refusal logs nothing."""
        result = await change()
        await self.record(caller.name, action, target, before, after(result))
        return result

    async def audit_log(self, limit: int) -> list[AuditEntry]:
        return await self._store.audit_log(limit)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()


def identity_view(identity: Identity) -> dict[str, Any]:
    """An identity as the API shows it (never its secret)."""
    return {
        "name": identity.name,
        "role": identity.role.value,
        "kind": identity.kind.value,
        "key_id": identity.key_id,
        "created_at": identity.created_at.isoformat(),
        "disabled_at": None if identity.disabled_at is None else identity.disabled_at.isoformat(),
    }
