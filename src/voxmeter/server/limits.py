"""The documented limits on the request path: quota, simultaneous calls, time.

Admission itself is :meth:`voxmeter.services.access.AccessService.admit`;
this is its HTTP face. Refusals are the platform's own 403 answers; the
``X-RateLimit-*`` and ``Retry-After`` headers are harmless additions that
well-behaved clients use.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from types import TracebackType

from starlette.types import Receive

from voxmeter.contract import errors
from voxmeter.domain.admission import Admission, Quota, Usage, Verdict
from voxmeter.domain.models import Principal
from voxmeter.server.runtime import Runtime
from voxmeter.services.metrics import REFUSALS


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


# How long a call runs before it is watched for its client hanging up: a
# shorter one holds its slot no longer than this after a hang-up anyway.
_WATCH_AFTER_SECONDS = 0.05


async def _cancel_on_hang_up(receive: Receive, call: asyncio.Task[object]) -> None:
    """Cancel ``call`` as soon as its client disconnects.

    The server keeps running a call whose client has gone; only ``receive``
    says so. A request body not yet read comes first and is skipped: the
    report calls read none, and an upload has read its whole body before
    it is admitted.
    """
    while (await receive())["type"] != "http.disconnect":
        pass
    call.cancel()


class LimitedCall:
    """``async with LimitedCall(runtime, principal, receive) as call``: admitted, or refused.

    While the block runs the call holds its slot and its time limit, and is
    cancelled if its client hangs up (refused 499, which only logs and
    metrics see), so that the slot is free again at once. A class rather than
    an ``@asynccontextmanager``: this is on every call's path, and the
    generator machinery cost more than the rest of it.
    """

    __slots__ = (
        "_admitted",
        "_deadline",
        "_headers",
        "_principal",
        "_receive",
        "_runtime",
        "_watch",
    )

    def __init__(self, runtime: Runtime, principal: Principal, receive: Receive) -> None:
        self._runtime = runtime
        self._principal = principal
        self._receive = receive
        self._admitted: tuple[Principal, Admission] | None = None

    async def __aenter__(self) -> Call:
        runtime, principal = self._runtime, self._principal
        settings = runtime.settings
        if not settings.enforce_limits:
            return Call(principal, usage=None)
        now = runtime.clock()
        access = runtime.services.access
        decision = await access.admit(principal, now)
        quota, admission = decision.quota, decision.admission
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
        self._admitted, self._headers = (decision.principal, admission), headers
        # A time limit can only interrupt a call at a point where it waits;
        # where the store never makes it wait, arming one would cost for nothing.
        interruptible = access.calls_wait or settings.simulated_latency_seconds > 0
        self._deadline = asyncio.timeout(settings.time_limit_seconds if interruptible else None)
        await self._deadline.__aenter__()
        # Likewise a hang-up. Watching for one takes a task; a timer first, so
        # that only a call still running after a moment pays for the task (a
        # task per call measured several times a timer's cost; see _WATCH_AFTER).
        self._watch: asyncio.TimerHandle | asyncio.Task[None] | None = None
        if interruptible:
            call = asyncio.current_task()
            assert call is not None
            self._watch = asyncio.get_running_loop().call_later(
                _WATCH_AFTER_SECONDS, self._start_watching, call
            )
        try:
            if settings.simulated_latency_seconds:
                await asyncio.sleep(settings.simulated_latency_seconds)
        except BaseException as error:
            await self.__aexit__(type(error), error, error.__traceback__)
            raise
        return Call(decision.principal, usage=admission.usage, headers=headers)

    def _start_watching(self, call: asyncio.Task[object]) -> None:
        self._watch = asyncio.create_task(_cancel_on_hang_up(self._receive, call))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        admitted = self._admitted
        if admitted is None:  # limits off
            return
        self._admitted = None
        watch, hung_up = self._watch, False
        if isinstance(watch, asyncio.Task) and watch.done() and watch.exception() is None:
            # The watch has cancelled this call: that cancellation was
            # delivered at the call's await and is taken back here.
            hung_up = True
            call = asyncio.current_task()
            assert call is not None
            call.uncancel()
        elif watch is not None:
            watch.cancel()
        try:
            await self._deadline.__aexit__(exc_type, exc, traceback)
        except TimeoutError:
            raise errors.ApiError(504, errors.TIME_LIMIT_EXCEEDED, headers=self._headers) from None
        finally:
            # Runs however the call ends; a time-limit cancellation has already
            # been delivered by now, so this await is not interrupted by it.
            principal, admission = admitted
            await self._runtime.services.access.release(principal.token, admission)
        if hung_up:
            raise errors.ApiError(499, errors.CLIENT_CLOSED)
