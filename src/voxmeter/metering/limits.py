"""The documented consumption rules: daily quota and simultaneous requests per token.

The arithmetic lives here; the store applies it atomically (so several worker
processes sharing one database never serve more than the limits), and the
server turns refusals into the platform's 403 answers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from voxmeter.config import Settings
from voxmeter.metering.models import Operation


class Verdict(enum.Enum):
    ADMITTED = "admitted"
    QUOTA_EXCEEDED = "quota_exceeded"
    TOO_MANY_IN_FLIGHT = "too_many_in_flight"


@dataclass(frozen=True, slots=True)
class Quota:
    """Today's limits for one call: the token's and its operation's (equal, per the model)."""

    day: date
    token_limit: int
    operation_limit: int
    resets_at: datetime  # the operation's next local midnight, as an aware datetime

    @classmethod
    def for_call(cls, operation: Operation, now: datetime, settings: Settings) -> Quota:
        local_now = now.astimezone(operation.zone)
        tomorrow = local_now.date() + timedelta(days=1)
        limit = operation.licenses * settings.calls_per_license
        return cls(
            day=local_now.date(),
            token_limit=limit,
            operation_limit=limit,
            resets_at=datetime.combine(tomorrow, time(0), operation.zone),
        )


@dataclass(frozen=True, slots=True)
class Usage:
    """Calls counted today, for one token and for all of its operation's tokens."""

    token_used: int
    operation_used: int


@dataclass(frozen=True, slots=True)
class Admission:
    """The store's answer to one call asking to run.

    ``slot``/``lease`` identify the concurrency slot taken (when admitted and
    concurrency is enforced); release passes them back so a late release can
    never free a slot that has since expired and been taken by another call.
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
