"""The console's storage port: admin identities, sessions, the audit log, usage reads.

Kept apart from :class:`voxmeter.storage.base.Store` so the console adds
tables and queries without touching the report path's store. The usage
reads here (by event attribute, event search, calls per day) read the
ledger's tables and never count a call against any operation's quota.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from voxmeter.domain.admins import AuditEntry, Identity, IdentityKind, Role
from voxmeter.storage.base import StorageError


class IdentityExists(StorageError):
    pass


@dataclass(frozen=True, slots=True)
class EventRow:
    """An accepted event as it counts now, with its attributes as sent."""

    event_id: str
    meter: str
    quantity: int
    effective_quantity: int | None
    state: str  # "counted", "amended" or "voided"
    occurred_at: datetime
    received_at: datetime
    attributes: str | None


@dataclass(frozen=True, slots=True)
class EventQuery:
    operation_id: int
    meter: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_id: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    """Several operations' rollups over one period, read at once, keyed by (operation, meter).

    ``sums``: the scaled total over the period; ``gauges``: the latest gauge
    value as of its last day. Pairs with nothing are absent.
    """

    sums: dict[tuple[int, str], int]
    gauges: dict[tuple[int, str], int]


STATES = {None: "counted", "amend": "amended", "void": "voided"}


class AdminStore(abc.ABC):
    @abc.abstractmethod
    async def close(self) -> None: ...

    # -- identities -----------------------------------------------------------

    @abc.abstractmethod
    async def create_identity(
        self,
        name: str,
        role: Role,
        kind: IdentityKind,
        key_id: str | None,
        secret_hash: bytes,
        now: datetime,
    ) -> Identity:
        """Raises :class:`IdentityExists` when the name is taken."""

    @abc.abstractmethod
    async def user(self, name: str) -> tuple[Identity, bytes] | None:
        """The enabled person named ``name`` and their stored password hash."""

    @abc.abstractmethod
    async def key(self, key_id: str) -> tuple[Identity, bytes] | None:
        """The enabled API key ``key_id`` and its stored secret hash."""

    @abc.abstractmethod
    async def identities(self) -> list[Identity]: ...

    @abc.abstractmethod
    async def disable_identity(self, name: str, now: datetime) -> Identity | None:
        """Disable the enabled identity ``name`` and end its sessions; None if there is none."""

    # -- sessions -------------------------------------------------------------

    @abc.abstractmethod
    async def create_session(
        self, session_hash: bytes, identity_id: int, csrf: str, now: datetime, expires: datetime
    ) -> None: ...

    @abc.abstractmethod
    async def session(self, session_hash: bytes, now: datetime) -> tuple[Identity, str] | None:
        """The enabled identity and CSRF token of an unexpired session."""

    @abc.abstractmethod
    async def end_session(self, session_hash: bytes) -> None: ...

    @abc.abstractmethod
    async def end_expired_sessions(self, now: datetime) -> int:
        """Forget sessions expired by ``now``; how many there were."""

    # -- audit ----------------------------------------------------------------

    @abc.abstractmethod
    async def append_audit(
        self,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        before: str | None,
        after: str | None,
    ) -> None: ...

    @abc.abstractmethod
    async def audit_log(self, limit: int) -> list[AuditEntry]:
        """The latest entries, newest first."""

    # -- operations -----------------------------------------------------------

    @abc.abstractmethod
    async def archive_operation(self, operation_id: int, now: datetime) -> bool:
        """False when it was archived already."""

    @abc.abstractmethod
    async def archived_operations(self) -> set[int]: ...

    @abc.abstractmethod
    async def calls_on(self, operation_id: int, day: date) -> int:
        """Calls counted against the operation's quota on its local ``day``."""

    @abc.abstractmethod
    async def calls_on_day(self, operation_ids: Sequence[int], day: date) -> dict[int, int]:
        """Calls counted on ``day`` per operation (absent: none), in one query."""

    # -- usage ----------------------------------------------------------------

    @abc.abstractmethod
    async def period_figures(
        self, operation_ids: Sequence[int], first: date, last: date
    ) -> PeriodFigures:
        """Every meter's figures for these operations over ``first``..``last``, in two queries."""

    @abc.abstractmethod
    async def totals_by_attribute(
        self, operation_ids: Sequence[int], meter: str, first: date, last: date, attribute: str
    ) -> list[tuple[int, str | None, int]]:
        """(operation, the attribute's value or None, scaled sum as it counts now)."""

    @abc.abstractmethod
    async def search_events(self, query: EventQuery) -> list[EventRow]:
        """Matching accepted events, newest first."""


async def open_admin_store(url: str) -> AdminStore:
    """The console's store on the database at ``url`` (its own connections)."""
    from voxmeter.storage import is_postgres

    if is_postgres(url):
        from voxmeter.storage.admin_postgres import PostgresAdminStore

        return await PostgresAdminStore.connect(url)
    from voxmeter.storage.admin_sqlite import SQLiteAdminStore

    return SQLiteAdminStore(url)
