"""The documented limits on the request path: quota, simultaneous calls, time.

Refusals are the platform's own 403 answers; the ``X-RateLimit-*`` and
``Retry-After`` headers are harmless additions that well-behaved clients use.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from voxmeter.contract import errors
from voxmeter.metering.limits import Admission, Quota, Usage, Verdict
from voxmeter.metering.models import Principal
from voxmeter.server.observability import REFUSALS
from voxmeter.server.runtime import Runtime

# A slot's lease outlives the call's time limit by this much, so only a
# worker that died mid-call ever leaves a slot to expire.
LEASE_MARGIN = timedelta(seconds=5)


@dataclass(slots=True)
class Call:
    """An admitted call: today's usage with it counted (None when limits are off), headers."""

    usage: Usage | None
    headers: dict[str, str] = field(default_factory=dict)


def _rate_headers(quota: Quota, admission: Admission) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(quota.token_limit),
        "X-RateLimit-Remaining": str(admission.remaining(quota)),
        "X-RateLimit-Reset": str(int(quota.resets_at.timestamp())),
    }


@asynccontextmanager
async def limited(runtime: Runtime, principal: Principal) -> AsyncIterator[Call]:
    """Admit the call or refuse it; hold its slot and its time limit while it runs."""
    settings = runtime.settings
    if not settings.enforce_limits:
        yield Call(usage=None)
        return
    store, token = runtime.store, principal.token
    now = runtime.clock()
    quota = Quota.for_call(principal.operation, now, settings)
    lease_until = now + timedelta(seconds=settings.time_limit_seconds) + LEASE_MARGIN
    admission = await store.admit(
        token.id, token.operation_id, quota, settings.concurrency_per_token, lease_until, now
    )
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
    try:
        async with asyncio.timeout(settings.time_limit_seconds):
            if settings.simulated_latency_seconds:
                await asyncio.sleep(settings.simulated_latency_seconds)
            yield Call(usage=admission.usage, headers=headers)
    except TimeoutError:
        raise errors.ApiError(504, errors.TIME_LIMIT_EXCEEDED, headers=headers) from None
    finally:
        # Runs however the call ends; a time-limit cancellation has already
        # been delivered by now, so this await is not interrupted by it.
        await store.release(token.id, admission.slot, admission.lease)
