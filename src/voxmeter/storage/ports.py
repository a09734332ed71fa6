"""The storage interface, one narrow port per concern, and its errors.

Services and tools speak only to these ports: :class:`Store` is their union,
what ``open_store`` gives. A backend (``storage.sqlite``, ``storage.postgres``)
implements each port in its own module and composes them into one store;
both pass the same test-suite.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from voxmeter.domain.admission import Admission, Quota, Usage
from voxmeter.domain.alerts import AlertEvent, AlertRule, Delivery, Endpoint, Level, MeterCap
from voxmeter.domain.ledger import DayFigures
from voxmeter.domain.models import (
    Correction,
    CorrectionResult,
    Credential,
    LedgerEntry,
    LedgerEvent,
    NewOperation,
    Operation,
    OperationChanges,
    Principal,
    RecordOutcome,
    Rejection,
    RejectionRecord,
    Token,
    TokenScope,
)


class StorageError(Exception):
    """Base class of the errors a store raises on purpose."""


class OperationExists(StorageError):
    pass


class UnknownOperation(StorageError):
    pass


class StoreUnavailable(StorageError):
    """The database did not answer in time: unreachable, restarting, or too slow."""


class StoreFull(StorageError):
    """The database has no room for a write (its disk is full); reads still work."""


class CapExceeded(StorageError):
    """A batch would take ``meter`` past its ``cap`` this month: nothing was stored."""

    def __init__(self, meter: str, cap: int, month_to_date: int, would_be: int) -> None:
        super().__init__(f"{meter} would pass its cap")
        self.meter = meter
        self.cap = cap
        self.month_to_date = month_to_date
        self.would_be = would_be


class SchemaNotCurrent(StorageError):
    """The database's schema is behind (or ahead of) this version of voxmeter."""


@dataclass(frozen=True, slots=True)
class DatabaseTimeouts:
    """How long a networked database may take before a call is refused 503."""

    # To open a connection.
    connect_seconds: float = 2.0
    # For a call to get a pooled connection (all busy, or the database away).
    wait_seconds: float = 2.0
    # For one statement, enforced by the database server itself.
    statement_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """One call asking to run: the arguments of :meth:`AdmissionStore.admit`."""

    principal: Principal
    quota: Quota
    concurrency: int
    lease_until: datetime
    now: datetime


class HealthStore(abc.ABC):
    """What health checks and tools ask of the database itself."""

    url: str

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def schema_revision(self) -> str | None:
        """The migration revision the database is at (cheap: one row)."""

    @abc.abstractmethod
    async def ledger_size(self) -> int:
        """How many events the ledger holds (from its sequence: cheap at any size)."""

    def free_disk_bytes(self) -> int | None:
        """Free space of the file system holding the database, when it is local (SQLite)."""
        return None


class OperationStore(abc.ABC):
    @abc.abstractmethod
    async def create_operation(self, new: NewOperation, now: datetime) -> Operation:
        """Raises :class:`OperationExists` when the name is taken."""

    @abc.abstractmethod
    async def update_operation(self, name: str, changes: OperationChanges) -> Operation:
        """Raises :class:`UnknownOperation`."""

    @abc.abstractmethod
    async def get_operation(self, name: str) -> Operation | None: ...

    async def _stored_operation(self, name: str) -> Operation:
        """An operation just written, read back as every reader sees it."""
        operation = await self.get_operation(name)
        assert operation is not None
        return operation

    @abc.abstractmethod
    async def list_operations(self) -> list[Operation]: ...


class TokenStore(abc.ABC):
    @abc.abstractmethod
    async def create_token(
        self,
        token_id: str,
        operation_id: int,
        secret_hash: bytes,
        scope: TokenScope,
        description: str,
        now: datetime,
    ) -> Token: ...

    @abc.abstractmethod
    async def find_credential(self, token_id: str) -> Credential | None:
        """The active token ``token_id`` with its operation and stored secret hash."""

    @abc.abstractmethod
    async def list_tokens(self, operation_id: int) -> list[Token]: ...

    @abc.abstractmethod
    async def get_token(self, token_id: str) -> Token | None: ...

    async def _stored_token(self, token_id: str) -> Token:
        """A token just written, read back as every reader sees it."""
        token = await self.get_token(token_id)
        assert token is not None
        return token

    @abc.abstractmethod
    async def revoke_token(self, token_id: str, now: datetime) -> bool:
        """False when no active token has that id."""


class AdmissionStore(abc.ABC):
    """The documented limits, applied atomically across every worker process."""

    # Whether a report's reads wait on I/O (and so can be interrupted by the
    # call's time limit) or run to completion without yielding.
    calls_wait: bool = True

    @abc.abstractmethod
    async def admit(
        self,
        principal: Principal,
        quota: Quota,
        concurrency: int,
        lease_until: datetime,
        now: datetime,
    ) -> Admission:
        """Let one call of the principal's token run, atomically across every process.

        First, in the same transaction, the credential is checked: a token
        revoked, or an operation changed (a newer ``revision``) since the
        principal was read gives ``CREDENTIAL_CHANGED`` and counts nothing,
        which is what lets the server cache principals. Then the call is
        admitted only if the token and its operation both have calls left
        today and fewer than ``concurrency`` of the token's calls hold a slot;
        then both day counters grow by one and the call holds a slot until
        :meth:`release`, or until ``lease_until`` at the latest should its
        process die (SQLite frees a dead process's slots at once instead,
        through the kernel's file locks, and gives no lease). A refusal
        changes nothing. The rule itself is :func:`voxmeter.domain.admission.decide`.
        """

    @abc.abstractmethod
    async def release(self, token_id: str, slot: int, lease: int | None) -> None:
        """Free a slot taken by :meth:`admit` (a no-op if its lease was lost)."""

    @abc.abstractmethod
    async def calls_today(self, token_id: str, operation_id: int, day: date) -> Usage:
        """Calls counted on ``day`` for the token and for its whole operation."""


class LedgerStore(abc.ABC):
    """The usage ledger: events, corrections, rejections, and their rollups kept in step."""

    @abc.abstractmethod
    async def record_events(
        self, operation_id: int, events: Sequence[LedgerEvent], now: datetime
    ) -> RecordOutcome:
        """Store the batch and update its rollups in one transaction.

        Events whose id is already in the ledger with the same fingerprint are
        duplicates and are skipped. If any id is already there (or earlier in
        the batch) with a different fingerprint, nothing at all is stored and
        the conflicts are returned.
        """

    @abc.abstractmethod
    async def event_meters(self, operation_id: int, event_ids: Sequence[str]) -> dict[str, str]:
        """The meter of each of these events that is in the ledger."""

    @abc.abstractmethod
    async def correct_events(
        self, operation_id: int, corrections: Sequence[Correction], now: datetime
    ) -> list[CorrectionResult]:
        """Append the corrections and adjust the rollups, in one transaction.

        A void of a voided event or an amend to the quantity the event already
        counts is ``UNCHANGED`` and appends nothing. If any event is unknown,
        nothing is applied: the unknown ones are ``UNKNOWN``, the rest ``UNCHANGED``.
        """

    @abc.abstractmethod
    async def log_rejections(
        self,
        operation_id: int,
        rejections: Sequence[Rejection],
        now: datetime,
        *,
        keep_per_operation: int,
        keep: int,
    ) -> None:
        """Keep why the events of a refused batch did not count.

        In the same transaction the log is trimmed to at most
        ``keep_per_operation`` rows of the operation and ``keep`` rows in all,
        the oldest dropped first and counted per operation.
        """

    @abc.abstractmethod
    async def keep_refused_payloads(
        self, operation_id: int, payloads: Sequence[tuple[int, str]], now: datetime
    ) -> None:
        """Keep (position in batch, event as sent) of a batch refused at ``now``."""

    @abc.abstractmethod
    async def refused_payloads(
        self, operation_id: int, since: datetime, limit: int
    ) -> dict[tuple[datetime, int], str]:
        """Events as sent, by (arrival, position), of batches refused at or after ``since``.

        The latest ``limit``; of two batches refused at one instant, the later.
        """

    @abc.abstractmethod
    async def recent_events(
        self,
        operation_id: int,
        limit: int,
        *,
        meter: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        event_id: str | None = None,
    ) -> list[LedgerEntry]:
        """The latest accepted events, newest first, as they count now.

        Only those of ``meter``, occurring at or after ``since`` and before
        ``until``, or with id ``event_id``, when given.
        """

    @abc.abstractmethod
    async def recent_rejections(self, operation_id: int, limit: int) -> list[RejectionRecord]:
        """The latest refused events, newest first."""

    @abc.abstractmethod
    async def dropped_rejections(self, operation_id: int) -> int:
        """How many of the operation's refused events were dropped from the log to bound it."""

    @abc.abstractmethod
    async def ledger_by_day(self, operation_id: int) -> dict[tuple[str, date], DayFigures]:
        """Per (meter, day), recomputed from the raw events and their corrections."""


class RollupReader(abc.ABC):
    """The rollups reports read: per operation, meter and day."""

    @abc.abstractmethod
    async def rollups_by_day(self, operation_id: int) -> dict[tuple[str, date], DayFigures]:
        """Per (meter, day), as the rollups hold them."""

    @abc.abstractmethod
    async def summed_total(
        self, operation_id: int, meter: str, first_day: date, last_day: date
    ) -> int:
        """Sum of a counter or minutes meter over the days, inclusive (0 when none)."""

    @abc.abstractmethod
    async def daily_rollups(
        self, operation_id: int, meter: str, first_day: date, last_day: date
    ) -> dict[date, tuple[int, int | None]]:
        """Per day with usage in the range: (sum, gauge's last value that day or None)."""

    @abc.abstractmethod
    async def gauge_value(self, operation_id: int, meter: str, day: date) -> int | None:
        """The gauge's latest value on or before ``day``, or None if never set."""


class AlertStore(abc.ABC):
    """Caps and alert rules (applied inside the ledger's transactions), webhooks, the outbox.

    ``record_events`` raises :class:`CapExceeded` (storing nothing) for a
    batch that would take a capped meter past its cap; it and
    ``correct_events`` record each level they cross or re-arm, and its
    deliveries, in their own transaction.
    """

    @abc.abstractmethod
    async def set_cap(self, operation_id: int, meter: str, quantity: int) -> None: ...

    @abc.abstractmethod
    async def clear_cap(self, operation_id: int, meter: str) -> bool:
        """False when there was no such cap."""

    @abc.abstractmethod
    async def list_caps(self) -> list[MeterCap]: ...

    @abc.abstractmethod
    async def add_rule(
        self, operation_id: int | None, meter: str, levels: Sequence[Level], now: datetime
    ) -> AlertRule: ...

    @abc.abstractmethod
    async def list_rules(self) -> list[AlertRule]: ...

    @abc.abstractmethod
    async def alert_events(self, limit: int) -> list[AlertEvent]:
        """The latest alerts recorded, newest first."""

    @abc.abstractmethod
    async def add_endpoint(self, url: str, secret: str, now: datetime) -> Endpoint: ...

    @abc.abstractmethod
    async def list_endpoints(self) -> list[Endpoint]: ...

    @abc.abstractmethod
    async def rotate_endpoint(self, endpoint_id: int, secret: str) -> bool:
        """The new secret signs; the one it replaces still signs too until the next rotation."""

    @abc.abstractmethod
    async def claim_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Delivery]:
        """Pending deliveries due by ``now`` whose lease is free, leased until ``lease_until``.

        A worker that dies holding a lease leaves its deliveries to be
        claimed again once the lease expires.
        """

    @abc.abstractmethod
    async def finish_delivery(
        self,
        delivery_id: int,
        *,
        status: str,
        error: str | None,
        next_attempt_at: datetime,
        now: datetime,
    ) -> None:
        """Record an attempt: ``delivered``, ``failed``, or ``pending`` again (a retry)."""

    @abc.abstractmethod
    async def list_deliveries(self, limit: int) -> list[Delivery]:
        """The latest deliveries, newest first."""

    @abc.abstractmethod
    async def replay_delivery(self, delivery_id: int, now: datetime) -> bool:
        """Make a delivery pending again, due now; False when there is no such delivery."""


class Store(
    HealthStore,
    OperationStore,
    TokenStore,
    AdmissionStore,
    LedgerStore,
    RollupReader,
    AlertStore,
):
    """One database holding operations, tokens and the usage ledger: every port at once."""
