"""The documented consumption rules: daily quota and simultaneous requests per token.

What a call is admitted against (:class:`Quota`) and what admission answers
(:class:`Admission`). The stores apply the rule atomically (so several worker
processes sharing one database never serve more than the limits); the server
turns refusals into the platform's 403 answers.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from voxmeter.domain.models import Operation


class Verdict(enum.Enum):
    ADMITTED = "admitted"
    QUOTA_EXCEEDED = "quota_exceeded"
    TOO_MANY_IN_FLIGHT = "too_many_in_flight"
    # The token was revoked, or its operation changed, since the caller read
    # its principal: nothing was counted; read it again and retry.
    CREDENTIAL_CHANGED = "credential_changed"


@dataclass(frozen=True, slots=True)
class Quota:
    """Today's limits for one call: the token's and its operation's (equal, per the model)."""

    day: date
    token_limit: int
    operation_limit: int
    starts_at: datetime  # the operation's local midnight today, as an aware datetime
    resets_at: datetime  # the operation's next local midnight
    # The X-RateLimit-Limit and X-RateLimit-Reset header values, made once.
    limit_text: str = field(repr=False)
    reset_text: str = field(repr=False)

    @classmethod
    def for_call(cls, operation: Operation, now: datetime, calls_per_license: int) -> Quota:
        limit = operation.licenses * calls_per_license
        key = (operation.timezone, limit)
        quota = _quotas.get(key)
        if quota is None or not quota.starts_at <= now < quota.resets_at:
            if len(_quotas) >= _MAX_QUOTAS:
                _quotas.clear()
            quota = _quotas[key] = cls._on(now.astimezone(operation.zone).date(), operation, limit)
        return quota

    @classmethod
    def _on(cls, day: date, operation: Operation, limit: int) -> Quota:
        resets_at = datetime.combine(day + timedelta(days=1), time(0), operation.zone)
        return cls(
            day=day,
            token_limit=limit,
            operation_limit=limit,
            starts_at=datetime.combine(day, time(0), operation.zone),
            resets_at=resets_at,
            limit_text=str(limit),
            reset_text=str(int(resets_at.timestamp())),
        )


# The day's quota depends only on the time zone and the limit: computed
# once per day for each pair seen, instead of once per call.
_quotas: dict[tuple[str, int], Quota] = {}
_MAX_QUOTAS = 10_000


@dataclass(frozen=True, slots=True)
class Usage:
    """Calls counted today, for one token and for all of its operation's tokens."""

    token_used: int
    operation_used: int


@dataclass(frozen=True, slots=True)
class Admission:
    """The store's answer to one call asking to run.

    ``slot`` is the concurrency slot taken (when admitted). ``lease`` is
    its lease where the store has leases (PostgreSQL; SQLite's slots are
    kernel locks that need none): release passes it back so a late release
    can never free a slot that has since expired and been taken by another call.
    """

    verdict: Verdict
    usage: Usage
    slot: int | None = None
    lease: int | None = None

    def remaining(self, quota: Quota) -> int:
        return max(
            0,
            min(
                quota.token_limit - self.usage.token_used,
                quota.operation_limit - self.usage.operation_used,
            ),
        )


REFUSED_STALE = Admission(Verdict.CREDENTIAL_CHANGED, Usage(0, 0))


def decide(
    current: bool, usage: Usage, quota: Quota, take_slot: Callable[[], int | None]
) -> Admission:
    """The admission rule for one call, given where its token stands.

    ``current``: the token is active and its operation at the revision the
    caller's principal was read at. ``usage``: the day's counters before
    this call. ``take_slot``: takes the token's lowest free slot below its
    concurrency and says which, or None when all are held; called only once
    the call passes every other check, so a refusal takes nothing.

    The counters after the call are the answer's ``usage`` when admitted,
    else ``usage`` unchanged. PostgreSQL's ``voxmeter_admit_all`` applies the
    same rule server-side; tests/test_admission_agreement.py holds them equal.
    """
    if not current:
        return REFUSED_STALE
    if usage.token_used >= quota.token_limit or usage.operation_used >= quota.operation_limit:
        return Admission(Verdict.QUOTA_EXCEEDED, usage)
    slot = take_slot()
    if slot is None:
        return Admission(Verdict.TOO_MANY_IN_FLIGHT, usage)
    return Admission(
        Verdict.ADMITTED, Usage(usage.token_used + 1, usage.operation_used + 1), slot=slot
    )
