"""The documented limits on the request path: quota, simultaneous calls, time.

Refusals are the platform's own 403 answers; the ``X-RateLimit-*`` and
``Retry-After`` headers are harmless additions that well-behaved clients use.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType

from voxmeter.contract import errors
from voxmeter.metering.limits import Admission, Quota, Usage, Verdict
from voxmeter.metering.models import Principal
from voxmeter.server.auth import reread
from voxmeter.server.observability import REFUSALS
from voxmeter.server.runtime import Runtime

# A slot's lease outlives the call's time limit by this much, so only a
# worker that died mid-call ever leaves a slot to expire.
LEASE_MARGIN = timedelta(seconds=5)


# Admission is retried with a freshly read principal when the one presented
# was stale; more changes than this during one call is a fault.
_REREADS = 2


@dataclass(slots=True)
class Call:
    """An admitted call.

    ``principal`` is the one admitted: the caller's, or a fresher reading of
    it when admission found the caller's out of date. ``usage`` is today's
    usage with this call counted (None when limits are off).
    """

    principal: Principal
    usage: Usage | None
    headers: dict[str, str] = field(default_factory=dict)


def _rate_headers(quota: Quota, admission: Admission) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": quota.limit_text,
        "X-RateLimit-Remaining": str(admission.remaining(quota)),
        "X-RateLimit-Reset": quota.reset_text,
    }


class limited:  # lower case: it reads as a function, ``async with limited(...)``
    """Admit the call or refuse it; hold its slot and its time limit while it runs.

    A class rather than an ``@asynccontextmanager``: this is on every call's
    path, and the generator machinery cost more than the rest of it.
    """

    __slots__ = ("_admission", "_deadline", "_headers", "_principal", "_runtime")

    def __init__(self, runtime: Runtime, principal: Principal) -> None:
        self._runtime = runtime
        self._principal = principal
        self._admission: Admission | None = None

    async def __aenter__(self) -> Call:
        runtime, principal = self._runtime, self._principal
        settings = runtime.settings
        if not settings.enforce_limits:
            return Call(principal, usage=None)
        now = runtime.clock()
        lease_until = now + timedelta(seconds=settings.time_limit_seconds) + LEASE_MARGIN
        for reread_count in range(_REREADS + 1):
            quota = Quota.for_call(principal.operation, now, settings)
            admission = await runtime.store.admit(
                principal, quota, settings.concurrency_per_token, lease_until, now
            )
            if admission.verdict is not Verdict.CREDENTIAL_CHANGED:
                break
            if reread_count == _REREADS:
                raise errors.ApiError(500, errors.INTERNAL_ERROR)
            principal = await reread(runtime, principal)
        headers = _rate_headers(quota, admission)
        if admission.verdict is Verdict.QUOTA_EXCEEDED:
            REFUSALS.labels("quota").inc()
            wait = math.ceil((quota.resets_at - now).total_seconds())
            raise errors.ApiError(
                403, errors.TOKEN_LIMIT_EXCEEDED, headers={**headers, "Retry-After": str(wait)}
            )
        if admission.verdict is Verdict.TOO_MANY_IN_FLIGHT:
            REFUSALS.labels("concurrency").inc()
            raise errors.ApiError(
                403,
                errors.SIMULTANEOUS_REQUESTS.format(limit=settings.concurrency_per_token),
                headers={**headers, "Retry-After": "1"},
            )
        assert admission.slot is not None and admission.lease is not None
        self._admission, self._headers = admission, headers
        # A time limit can only interrupt a call at a point where it waits;
        # where the store never makes it wait, arming one would cost for nothing.
        interruptible = runtime.store.calls_wait or settings.simulated_latency_seconds > 0
        self._deadline = asyncio.timeout(settings.time_limit_seconds if interruptible else None)
        await self._deadline.__aenter__()
        try:
            if settings.simulated_latency_seconds:
                await asyncio.sleep(settings.simulated_latency_seconds)
        except BaseException as error:
            await self.__aexit__(type(error), error, error.__traceback__)
            raise
        return Call(principal, usage=admission.usage, headers=headers)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        admission = self._admission
        if admission is None:  # limits off
            return
        self._admission = None
        try:
            await self._deadline.__aexit__(exc_type, exc, traceback)
        except TimeoutError:
            raise errors.ApiError(504, errors.TIME_LIMIT_EXCEEDED, headers=self._headers) from None
        finally:
            # Runs however the call ends; a time-limit cancellation has already
            # been delivered by now, so this await is not interrupted by it.
            assert admission.slot is not None and admission.lease is not None
            await self._runtime.store.release(
                self._principal.token.id, admission.slot, admission.lease
            )
