"""The storage port of statements: price books, subscriptions, closed statements.

Kept apart from :class:`~voxmeter.storage.base.Store`: each backend's
implementation opens its own short-lived connection per call (statements
are administrative, not on the report path), or one for a whole
:meth:`StatementStore.session` (a month close of many operations), and
reads the ledger's tables directly for the month quantities and the events
behind a line.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, datetime

from voxmeter.storage import is_postgres
from voxmeter.storage.base import StorageError


class PriceBookExists(StorageError):
    pass


@dataclass(frozen=True, slots=True)
class PriceBook:
    id: int
    name: str
    currency: str
    breakdown_attribute: str | None
    created_at: datetime
    # Each version as its JSON sheet, oldest effective month first.
    versions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredStatement:
    number: int
    operation_id: int
    month: str
    closed_at: datetime
    document: str


@dataclass(frozen=True, slots=True)
class EventBehind:
    """A ledger event as it counted at a given instant."""

    event_id: str
    occurred_at: datetime
    received_at: datetime
    quantity: int  # as received, scaled to the meter
    counted: int | None  # after corrections up to the instant; None once voided
    attributes: str | None


@dataclass(frozen=True, slots=True)
class LedgerWindow:
    """One meter's events of some days, as they stood at ``until``.

    With ``changed_after``, only events received or corrected after that
    instant (the events behind an adjustment).
    """

    operation_id: int
    meter: str
    first_day: date
    last_day: date
    until: datetime
    changed_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class PendingStatement:
    """A statement ready to keep, but for its number, which the document shows."""

    operation_id: int
    document_for: Callable[[int], str]


class StatementStore(abc.ABC):
    @abc.abstractmethod
    def session(self) -> AbstractAsyncContextManager[None]:
        """Calls made inside, by the same task, share one connection."""

    # -- price books ---------------------------------------------------------

    @abc.abstractmethod
    async def create_price_book(
        self, name: str, currency: str, breakdown_attribute: str | None, now: datetime
    ) -> PriceBook:
        """Raises :class:`PriceBookExists` when the name is taken."""

    @abc.abstractmethod
    async def get_price_book(self, name: str) -> PriceBook | None: ...

    @abc.abstractmethod
    async def price_book_by_id(self, price_book_id: int) -> PriceBook: ...

    @abc.abstractmethod
    async def list_price_books(self) -> list[PriceBook]: ...

    @abc.abstractmethod
    async def put_version(
        self, price_book_id: int, effective_month: str, sheet: str, now: datetime
    ) -> None:
        """Set the version effective from ``effective_month`` (replacing one set before)."""

    @abc.abstractmethod
    async def subscribe(self, operation_id: int, price_book_id: int, now: datetime) -> None:
        """The operation is billed on the price book from now on (replaces any other)."""

    @abc.abstractmethod
    async def subscription(self, operation_id: int) -> int | None:
        """The id of the price book the operation is subscribed to."""

    @abc.abstractmethod
    async def subscribers(self, price_book_id: int) -> list[int]: ...

    # -- the ledger, read for rating -----------------------------------------

    @abc.abstractmethod
    async def month_quantities(
        self, operation_id: int, first_day: date, last_day: date
    ) -> dict[str, int]:
        """Per meter, scaled: a counter's or minutes meter's sum over the days;
        a gauge's latest value on or before ``last_day``."""

    @abc.abstractmethod
    async def breakdown(
        self, operation_id: int, first_day: date, last_day: date, attribute: str
    ) -> dict[tuple[str, str], int]:
        """Per (summed meter, the attribute's value or ''), the scaled quantity counted now."""

    @abc.abstractmethod
    async def events_behind(self, window: LedgerWindow) -> list[EventBehind]:
        """The events of the window, oldest first."""

    # -- statements ----------------------------------------------------------

    @abc.abstractmethod
    async def close_statements(
        self, month: str, pending: Sequence[PendingStatement], now: datetime
    ) -> list[StoredStatement]:
        """Keep each operation's statement of ``month``, numbered on; skip those that exist.

        One transaction: the numbers are taken in it (gapless across every
        operation), and each insert does nothing on the (operation, month)
        key, so concurrent closers of the same month keep exactly one each.
        """

    @abc.abstractmethod
    async def statements(
        self, operation_id: int | None = None, month: str | None = None
    ) -> list[StoredStatement]:
        """Closed statements, by number."""

    @abc.abstractmethod
    async def statement(self, number: int) -> StoredStatement | None: ...


def statement_store(url: str) -> StatementStore:
    """The statement store of the database at ``url``."""
    if is_postgres(url):
        from voxmeter.storage.statements_postgres import PostgresStatementStore

        return PostgresStatementStore(url)
    from voxmeter.storage.statements_sqlite import SQLiteStatementStore

    return SQLiteStatementStore(url)
