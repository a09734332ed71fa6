"""The records voxmeter keeps, as the storage layer hands them over."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

import msgspec


class TokenScope(enum.StrEnum):
    """What a token may do: read reports, or push usage."""

    REPORT = "report"
    INGEST = "ingest"


@dataclass(frozen=True, slots=True)
class Operation:
    id: int
    name: str
    server_id: str
    timezone: str
    licenses: int
    pbx: int
    services: frozenset[str]
    created_at: datetime
    # Grows with every change to the operation; a credential read at an older
    # revision is stale (see Store.admit).
    revision: int = 0

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_date(self, moment: datetime) -> date:
        """The calendar day ``moment`` falls on in the operation's own time zone."""
        return moment.astimezone(self.zone).date()


@dataclass(frozen=True, slots=True)
class NewOperation:
    name: str
    licenses: int
    server_id: str = "0001"
    timezone: str = "America/Bogota"
    pbx: int = 0
    services: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class OperationChanges:
    """Fields to change on an operation; ``None`` leaves a field as it is."""

    licenses: int | None = None
    server_id: str | None = None
    timezone: str | None = None
    pbx: int | None = None
    services: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Token:
    """A token's public record; the secret itself is never kept."""

    id: str
    operation_id: int
    scope: TokenScope
    description: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who an authenticated request acts for."""

    token: Token
    operation: Operation


@dataclass(frozen=True, slots=True)
class Credential:
    """A principal with the hash its secret must match."""

    principal: Principal
    secret_hash: bytes


class LedgerEvent(msgspec.Struct, frozen=True, gc=False):
    """A validated usage event, ready to be stored.

    ``quantity`` is scaled to the meter's kind (thousandths for minutes);
    ``day`` is the operation-local day the event counts on; ``fingerprint``
    identifies the payload so a resend can be told from a conflicting reuse
    of the same id.

    A msgspec struct rather than a frozen dataclass: ingestion builds one per
    event, and this is several times cheaper to construct.
    """

    event_id: str
    meter: str
    quantity: int
    occurred_at: datetime
    day: date
    attributes: str | None
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What became of each event of a batch, by position in the batch."""

    accepted: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)


class Action(enum.StrEnum):
    VOID = "void"
    AMEND = "amend"


@dataclass(frozen=True, slots=True)
class Correction:
    """Void an event, or amend its quantity (scaled to its meter), by id."""

    event_id: str
    action: Action
    quantity: int | None = None
    reason: str = ""


class CorrectionResult(enum.StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"  # already in the asked state: a retry, harmless
    UNKNOWN = "unknown"  # no such event: nothing of the batch is applied


@dataclass(frozen=True, slots=True)
class Rejection:
    """One event of a refused batch, and why."""

    index: int
    event_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class RejectionRecord:
    received_at: datetime
    index: int
    event_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """An accepted event as it counts now."""

    event_id: str
    meter: str
    quantity: int  # as received
    effective_quantity: int | None  # None once voided
    state: str  # "counted", "amended" or "voided"
    occurred_at: datetime
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """A rollup row that disagrees with the ledger it summarises."""

    meter: str
    day: date
    rollup: tuple[int, int | None]  # (sum, gauge)
    ledger: tuple[int, int | None]
