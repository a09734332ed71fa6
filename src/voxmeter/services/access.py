"""Who is calling, and whether the call may run: tokens checked, calls admitted.

Admission applies the documented limits (daily quota, simultaneous calls per
token) atomically in the store. A principal may come from the worker's
credential cache because admission proves it current in its own transaction
(see :mod:`voxmeter.services.credentials`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from voxmeter.config import Settings
from voxmeter.contract import errors
from voxmeter.domain import tokens
from voxmeter.domain.admission import Admission, Quota, Usage, Verdict
from voxmeter.domain.models import Operation, Principal, Token, TokenScope
from voxmeter.services.credentials import CredentialCache
from voxmeter.storage.base import Store

# A slot's lease outlives the call's time limit by this much, so only a
# worker that died mid-call ever leaves a slot to expire.
LEASE_MARGIN = timedelta(seconds=5)

# Admission is retried with a freshly read principal when the one presented
# was stale; more changes than this during one call is a fault.
_REREADS = 2

# Token ids found in no credential are remembered this long, so a caller
# repeating an unknown token costs no database query each time; a token id
# is minted at random, so none is created while it is remembered here.
UNKNOWN_TTL_SECONDS = 10.0
_MAX_UNKNOWN = 10_000


@dataclass(frozen=True, slots=True)
class Decision:
    """Admission's answer for one call, and the principal and quota it was decided on."""

    principal: Principal
    quota: Quota
    admission: Admission


class AccessService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self.credentials = CredentialCache()
        # Unknown token id -> when it may be looked up again (monotonic).
        self._unknown: dict[str, float] = {}

    async def authenticate(
        self, secret: str, scope: TokenScope, *, cached: bool = False
    ) -> Principal:
        """The caller's principal; 403 for an unknown, revoked or wrong-scope token.

        ``cached`` may take the principal from the credential cache: only for
        calls that are then admitted, since admission is what proves a cached
        principal still current.
        """
        token_id = tokens.token_id_of(secret)
        if token_id is None:
            raise errors.validate_token()
        credential = self.credentials.get(token_id) if cached else None
        if credential is None:
            if self._known_unknown(token_id):
                raise errors.validate_token()
            credential = await self._store.find_credential(token_id)
            if credential is None:
                self._remember_unknown(token_id)
            elif cached:
                self.credentials.put(token_id, credential)
        if credential is None or not tokens.matches(secret, credential.secret_hash):
            raise errors.validate_token()
        if credential.principal.token.scope is not scope:
            raise errors.wrong_scope()
        return credential.principal

    def _known_unknown(self, token_id: str) -> bool:
        until = self._unknown.get(token_id)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self._unknown[token_id]
        return False

    def _remember_unknown(self, token_id: str) -> None:
        if len(self._unknown) >= _MAX_UNKNOWN:
            # The oldest entry first: dicts keep insertion order.
            del self._unknown[next(iter(self._unknown))]
        self._unknown[token_id] = time.monotonic() + UNKNOWN_TTL_SECONDS

    async def reread(self, principal: Principal) -> Principal:
        """The principal as stored now (after admission found it changed); 403 if revoked."""
        self.credentials.forget(principal.token.id)
        credential = await self._store.find_credential(principal.token.id)
        if credential is None:
            raise errors.validate_token()
        self.credentials.put(principal.token.id, credential)
        return credential.principal

    def quota(self, operation: Operation, now: datetime) -> Quota:
        return Quota.for_call(operation, now, self._settings.calls_per_license)

    async def admit(self, principal: Principal, now: datetime) -> Decision:
        """Count the call and give it a slot, or say which limit refuses it.

        A principal found stale is read again and the call asked again; a
        refusal changes nothing.
        """
        settings = self._settings
        lease_until = now + timedelta(seconds=settings.time_limit_seconds) + LEASE_MARGIN
        for reread_count in range(_REREADS + 1):
            quota = self.quota(principal.operation, now)
            admission = await self._store.admit(
                principal, quota, settings.concurrency_per_token, lease_until, now
            )
            if admission.verdict is not Verdict.CREDENTIAL_CHANGED:
                return Decision(principal, quota, admission)
            if reread_count < _REREADS:
                principal = await self.reread(principal)
        raise errors.ApiError(500, errors.INTERNAL_ERROR)

    async def release(self, token: Token, admission: Admission) -> None:
        """Free the slot an admitted call held."""
        assert admission.slot is not None
        await self._store.release(token.id, admission.slot, admission.lease)

    async def usage_today(self, token: Token, quota: Quota) -> Usage:
        return await self._store.calls_today(token.id, token.operation_id, quota.day)

    @property
    def calls_wait(self) -> bool:
        """Whether the store makes a call wait on I/O, where a time limit can interrupt it."""
        return self._store.calls_wait
