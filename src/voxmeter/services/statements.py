"""Price books, subscriptions, previews, month close and the statements it freezes.

The one entry for every front end (CLI now, the admin API and console
later). A closed statement is a JSON document written once, numbered, and
never rewritten; later changes to its month are billed as adjustment lines
on the operation's next statement (see :mod:`voxmeter.domain.statements`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from voxmeter.config import Settings
from voxmeter.contract import errors
from voxmeter.contract.meters import billing_meter
from voxmeter.contract.quantities import from_scaled
from voxmeter.domain.clock import Clock
from voxmeter.domain.models import Operation
from voxmeter.domain.pricing import (
    ZERO,
    Line,
    LineKind,
    MeterPrice,
    Month,
    PriceSheet,
    PricingError,
    Rated,
    currency,
    decimal,
    rate_month,
    sheet_for,
)
from voxmeter.domain.statements import Billed, adjustment_lines, closable
from voxmeter.services.admin import unknown_operation
from voxmeter.services.statement_exports import ExportFormat, encode, export, export_document
from voxmeter.storage.base import Store
from voxmeter.storage.statements import (
    LedgerWindow,
    PendingStatement,
    PriceBook,
    PriceBookExists,
    StatementStore,
    StoredStatement,
)

_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_UNCHANGED: Any = object()
_CLOSE_BATCH = 100


def _invalid(reason: str) -> errors.ApiError:
    return errors.ApiError(400, errors.INVALID_PARAMETERS, [{"reason": reason}])


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except PricingError as exc:
        raise _invalid(str(exc)) from None


def _units(meter: str, scaled: int) -> Decimal:
    found = billing_meter(meter)
    return from_scaled(scaled, found.kind.scale if found else 0)


@dataclass(frozen=True, slots=True)
class PriceBookView:
    book: PriceBook
    sheets: tuple[PriceSheet, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.book.name,
            "currency": self.book.currency,
            "breakdown_attribute": self.book.breakdown_attribute,
            "versions": [sheet.to_json() for sheet in self.sheets],
        }


@dataclass(frozen=True, slots=True)
class CloseOutcome:
    """What a close did, per operation name."""

    closed: list[StoredStatement] = field(default_factory=list)
    already_closed: list[str] = field(default_factory=list)
    not_due: list[str] = field(default_factory=list)
    not_billable: list[str] = field(default_factory=list)  # no subscription or no prices


def _line_json(line: Line, breakdown: Mapping[str, Decimal] | None = None) -> dict[str, Any]:
    return {
        "kind": line.kind.value,
        "meter": line.meter,
        "description": line.description,
        "quantity": str(line.quantity),
        "billable": str(line.billable),
        "model": None if line.model is None else line.model.value,
        "tiers": [
            {"quantity": str(t.quantity), "unit_price": str(t.unit_price), "amount": str(t.amount)}
            for t in line.tiers
        ],
        "amount": str(line.amount),
        "adjusts": None if line.adjusts is None else dict(line.adjusts),
        "breakdown": {value: str(q) for value, q in sorted((breakdown or {}).items())},
    }


def document(
    *,
    number: int | None,
    operation: Operation,
    month: Month,
    book: PriceBook,
    sheet: PriceSheet,
    rated: Rated,
    breakdowns: Mapping[str, Mapping[str, Decimal]],
    issuer: Mapping[str, str],
    closed_at: datetime | None,
) -> dict[str, Any]:
    """A statement as kept and exported: everything needed to read it, and nothing derived."""
    return {
        "number": number,
        "status": "closed" if number is not None else "preview",
        "operation": operation.name,
        "operation_id": operation.id,
        "month": str(month),
        "issuer": dict(issuer),
        "price_book": book.name,
        "price_sheet": sheet.to_json(),
        "currency": rated.currency.code,
        "lines": [
            _line_json(
                line, breakdowns.get(line.meter or "") if line.kind is LineKind.USAGE else None
            )
            for line in rated.lines
        ],
        "subtotal": str(rated.subtotal),
        "tax_rate": str(rated.tax_rate),
        "tax": str(rated.tax),
        "total": str(rated.total),
        "closed_at": None if closed_at is None else closed_at.isoformat(),
        "breakdown_attribute": book.breakdown_attribute,
    }


class StatementService:
    def __init__(
        self, store: Store, statements: StatementStore, settings: Settings, clock: Clock
    ) -> None:
        self._store = store
        self._statements = statements
        self._settings = settings
        self._clock = clock

    # -- price books ---------------------------------------------------------

    async def create_price_book(
        self, name: str, currency_code: str, breakdown_attribute: str | None = None
    ) -> PriceBookView:
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise _invalid("a price book name has 1 to 100 characters")
        try:
            money = currency(currency_code)
        except PricingError as exc:
            raise _invalid(str(exc)) from None
        if breakdown_attribute is not None and not _ATTRIBUTE.match(breakdown_attribute):
            raise _invalid("an attribute name has 1 to 64 letters, digits, '_', '.' or '-'")
        try:
            book = await self._statements.create_price_book(
                name, money.code, breakdown_attribute, self._clock()
            )
        except PriceBookExists:
            raise errors.ApiError(409, errors.PRICE_BOOK_EXISTS.format(name=name)) from None
        return PriceBookView(book, ())

    async def price_book(self, name: str) -> PriceBookView:
        book = await self._statements.get_price_book(name)
        if book is None:
            raise errors.ApiError(404, errors.PRICE_BOOK_UNKNOWN.format(name=name))
        return self._view(book)

    @staticmethod
    def _view(book: PriceBook) -> PriceBookView:
        return PriceBookView(
            book, tuple(PriceSheet.from_json(orjson.loads(s)) for s in book.versions)
        )

    async def price_books(self) -> list[PriceBookView]:
        return [self._view(book) for book in await self._statements.list_price_books()]

    async def set_price(
        self,
        book_name: str,
        effective: str,
        meter: str,
        *,
        model: str = "flat",
        unit_price: str = "0",
        tiers: Sequence[tuple[str | None, str]] = (),
        included: str = "0",
    ) -> PriceBookView:
        """Price ``meter`` from the ``effective`` month on.

        ``tiers`` are (up to, unit price) pairs, ascending, the last with no bound.
        """
        try:
            price = MeterPrice.build(model, unit_price=unit_price, tiers=tiers, included=included)
        except PricingError as exc:
            raise _invalid(str(exc)) from None
        return await self._change_prices(book_name, effective, meter, price)

    async def remove_price(self, book_name: str, effective: str, meter: str) -> PriceBookView:
        """Stop billing ``meter`` from the ``effective`` month on."""
        return await self._change_prices(book_name, effective, meter, None)

    async def _change_prices(
        self, book_name: str, effective: str, meter: str, price: MeterPrice | None
    ) -> PriceBookView:
        if billing_meter(meter) is None:
            raise _invalid(f"no billing meter named {meter!r}")

        def change(sheet: PriceSheet) -> PriceSheet:
            prices = dict(sheet.prices)
            if price is None:
                prices.pop(meter, None)
            else:
                prices[meter] = price
            return PriceSheet(
                sheet.currency, sheet.effective, prices, sheet.tax_rate, sheet.minimum, sheet.cap
            )

        return await self._new_version(book_name, effective, change)

    async def set_terms(
        self,
        book_name: str,
        effective: str,
        *,
        tax_rate: str | None = None,
        minimum: str | None = None,
        cap: str | None = _UNCHANGED,
    ) -> PriceBookView:
        """Change the tax rate, the monthly minimum or cap (None: no cap) from a month on."""

        def change(sheet: PriceSheet) -> PriceSheet:
            return PriceSheet(
                sheet.currency,
                sheet.effective,
                sheet.prices,
                sheet.tax_rate if tax_rate is None else decimal(tax_rate, "tax rate"),
                sheet.minimum if minimum is None else decimal(minimum, "minimum"),
                sheet.cap if cap is _UNCHANGED else (None if cap is None else decimal(cap, "cap")),
            )

        return await self._new_version(book_name, effective, change)

    async def _new_version(
        self, book_name: str, effective: str, change: Callable[[PriceSheet], PriceSheet]
    ) -> PriceBookView:
        view = await self.price_book(book_name)
        month = _month(effective)
        closed = [
            Month.parse(s.month)
            for operation_id in await self._statements.subscribers(view.book.id)
            for s in await self._statements.statements(operation_id)
        ]
        latest_closed = max(closed, default=None)
        if latest_closed is not None and month <= latest_closed:
            raise errors.ApiError(
                409,
                errors.MONTH_CLOSED.format(month=latest_closed, next=latest_closed.next()),
            )
        base = sheet_for(view.sheets, month) or PriceSheet(currency(view.book.currency), month, {})
        try:
            sheet = change(PriceSheet(
                base.currency, month, base.prices, base.tax_rate, base.minimum, base.cap
            ))  # fmt: skip
        except PricingError as exc:
            raise _invalid(str(exc)) from None
        await self._statements.put_version(
            view.book.id, str(month), orjson.dumps(sheet.to_json()).decode(), self._clock()
        )
        return await self.price_book(book_name)

    async def subscribe(self, operation_name: str, book_name: str) -> None:
        """Bill the operation on the price book; 409 for a book in another currency than
        its closed statements (their adjustments could not be added up)."""
        operation = await self._operation(operation_name)
        view = await self.price_book(book_name)
        closed = await self._statements.statements(operation.id)
        if closed:
            billed_in = orjson.loads(closed[-1].document)["currency"]
            if billed_in != view.book.currency:
                raise errors.ApiError(
                    409,
                    errors.CURRENCY_CHANGE.format(name=operation.name, currency=billed_in),
                )
        await self._statements.subscribe(operation.id, view.book.id, self._clock())

    async def subscription(self, operation_name: str) -> str | None:
        """The name of the price book the operation is billed on, if any."""
        operation = await self._operation(operation_name)
        book_id = await self._statements.subscription(operation.id)
        if book_id is None:
            return None
        return (await self._statements.price_book_by_id(book_id)).name

    async def _operation(self, name: str) -> Operation:
        operation = await self._store.get_operation(name)
        if operation is None:
            raise unknown_operation(name)
        return operation

    # -- rating --------------------------------------------------------------

    async def _billing(
        self, operation: Operation, books: dict[int, PriceBookView] | None = None
    ) -> tuple[PriceBookView, list[StoredStatement]]:
        """The operation's price book (from ``books`` if there) and its closed statements."""
        book_id = await self._statements.subscription(operation.id)
        if book_id is None:
            raise errors.ApiError(409, errors.NOT_SUBSCRIBED.format(name=operation.name))
        books = {} if books is None else books
        if book_id not in books:
            books[book_id] = self._view(await self._statements.price_book_by_id(book_id))
        return books[book_id], await self._statements.statements(operation.id)

    async def _quantities(self, operation: Operation, month: Month) -> dict[str, Decimal]:
        scaled = await self._statements.month_quantities(
            operation.id, month.first_day, month.last_day
        )
        return {meter: _units(meter, q) for meter, q in scaled.items()}

    async def _adjustments(
        self, operation: Operation, earlier: list[StoredStatement], month: Month
    ) -> list[Line]:
        """Lines for every change, since it was billed, to a month already closed."""
        billed: dict[str, dict[str, Billed]] = {}
        closed: dict[str, tuple[int, PriceSheet]] = {}
        for stored in earlier:
            doc = orjson.loads(stored.document)
            closed[doc["month"]] = (doc["number"], PriceSheet.from_json(doc["price_sheet"]))
            for line in doc["lines"]:
                adjusts = line["adjusts"]
                key_month = adjusts["month"] if adjusts else doc["month"]
                key = adjusts["item"] if adjusts else (line["meter"] or line["kind"])
                so_far = billed.setdefault(key_month, {}).get(key, Billed(ZERO, ZERO))
                billed[key_month][key] = Billed(
                    so_far.quantity + Decimal(line["quantity"]),
                    so_far.amount + Decimal(line["amount"]),
                )
        lines: list[Line] = []
        for closed_month, (number, sheet) in sorted(closed.items()):
            if closed_month == str(month):
                continue
            adjusted = Month.parse(closed_month)
            lines += adjustment_lines(
                number,
                adjusted,
                billed.get(closed_month, {}),
                await self._quantities(operation, adjusted),
                sheet,
            )
        return lines

    async def _breakdowns(
        self, operation: Operation, month: Month, attribute: str | None
    ) -> dict[str, dict[str, Decimal]]:
        if attribute is None:
            return {}
        found: dict[str, dict[str, Decimal]] = {}
        rows = await self._statements.breakdown(
            operation.id, month.first_day, month.last_day, attribute
        )
        for (meter, value), scaled in rows.items():
            found.setdefault(meter, {})[value] = _units(meter, scaled)
        return found

    def _issuer(self) -> dict[str, str]:
        return {
            "name": self._settings.statement_issuer_name,
            "address": self._settings.statement_issuer_address,
        }

    async def _rate(
        self,
        operation: Operation,
        month: Month,
        book: PriceBookView,
        earlier: list[StoredStatement],
    ) -> tuple[PriceSheet, Rated, dict[str, dict[str, Decimal]]]:
        sheet = sheet_for(book.sheets, month)
        if sheet is None:
            raise errors.ApiError(
                409, errors.NO_PRICES_IN_FORCE.format(name=book.book.name, month=month)
            )
        adjustments = await self._adjustments(operation, earlier, month)
        rated = rate_month(await self._quantities(operation, month), sheet, adjustments)
        breakdowns = await self._breakdowns(operation, month, book.book.breakdown_attribute)
        return sheet, rated, breakdowns

    async def preview(self, operation_name: str) -> dict[str, Any]:
        """The operation's current month so far, with any adjustments due, as it would close."""
        operation = await self._operation(operation_name)
        async with self._statements.session():
            book, earlier = await self._billing(operation)
            month = Month.of(operation.local_date(self._clock()))
            sheet, rated, breakdowns = await self._rate(operation, month, book, earlier)
        return document(
            number=None,
            operation=operation,
            month=month,
            book=book.book,
            sheet=sheet,
            rated=rated,
            breakdowns=breakdowns,
            issuer=self._issuer(),
            closed_at=None,
        )

    # -- closing -------------------------------------------------------------

    async def close(self, month_text: str, operation_name: str | None = None) -> CloseOutcome:
        """Close ``month`` for one operation or all: one statement each, once.

        Operations whose month has not ended plus the grace period, that
        have no subscription or no prices in force, are listed and skipped.
        """
        month = _month(month_text)
        operations = (
            [await self._operation(operation_name)]
            if operation_name is not None
            else await self._store.list_operations()
        )
        outcome = CloseOutcome()
        now = self._clock()
        books: dict[int, PriceBookView] = {}
        async with self._statements.session():
            pending = [
                (operation, statement)
                for operation in operations
                if (statement := await self._prepare(operation, month, now, books, outcome))
            ]
            # Kept in batches: fewer commits, and no write lock held for long.
            for start in range(0, len(pending), _CLOSE_BATCH):
                batch = pending[start : start + _CLOSE_BATCH]
                kept = await self._statements.close_statements(
                    str(month), [statement for _, statement in batch], now
                )
                outcome.closed.extend(kept)
                ids = {stored.operation_id for stored in kept}
                outcome.already_closed.extend(o.name for o, _ in batch if o.id not in ids)
        return outcome

    async def _prepare(
        self,
        operation: Operation,
        month: Month,
        now: datetime,
        books: dict[int, PriceBookView],
        outcome: CloseOutcome,
    ) -> PendingStatement | None:
        """The operation's statement of ``month``, but for its number; None when skipped."""
        if not closable(month, operation.zone, now, self._settings.statement_grace):
            outcome.not_due.append(operation.name)
            return None
        try:
            book, earlier = await self._billing(operation, books)
            if any(s.month == str(month) for s in earlier):
                outcome.already_closed.append(operation.name)
                return None
            sheet, rated, breakdowns = await self._rate(operation, month, book, earlier)
        except errors.ApiError:
            outcome.not_billable.append(operation.name)
            return None

        def document_for(number: int) -> str:
            return encode(
                document(
                    number=number,
                    operation=operation,
                    month=month,
                    book=book.book,
                    sheet=sheet,
                    rated=rated,
                    breakdowns=breakdowns,
                    issuer=self._issuer(),
                    closed_at=now,
                )
            )

        return PendingStatement(operation.id, document_for)

    # -- reading -------------------------------------------------------------

    async def list_statements(
        self, operation_name: str | None = None, month: str | None = None
    ) -> list[StoredStatement]:
        operation_id = None
        if operation_name is not None:
            operation_id = (await self._operation(operation_name)).id
        return await self._statements.statements(
            operation_id, None if month is None else str(_month(month))
        )

    async def get(self, number: int) -> StoredStatement:
        stored = await self._statements.statement(number)
        if stored is None:
            raise errors.ApiError(404, errors.STATEMENT_UNKNOWN.format(number=number))
        return stored

    async def lines(self, number: int) -> list[dict[str, Any]]:
        """Each line of the statement with the ledger events behind it, as they counted.

        A usage line's events are its month's, as of the close; an
        adjustment's are those of the adjusted month received or corrected
        between the operation's previous close and this one.
        """
        stored = await self.get(number)
        doc = orjson.loads(stored.document)
        async with self._statements.session():
            previous = [
                s
                for s in await self._statements.statements(stored.operation_id)
                if s.number < number
            ]
            since = previous[-1].closed_at if previous else None
            return [
                {"line": position, **line, "events": await self._behind(stored, doc, line, since)}
                for position, line in enumerate(doc["lines"], start=1)
            ]

    async def _behind(
        self,
        stored: StoredStatement,
        doc: Mapping[str, Any],
        line: Mapping[str, Any],
        since: datetime | None,
    ) -> list[dict[str, Any]]:
        meter, adjusts = line["meter"], line["adjusts"]
        if meter is None or (adjusts is not None and since is None):
            return []
        month = Month.parse(adjusts["month"] if adjusts else doc["month"])
        window = LedgerWindow(
            stored.operation_id,
            meter,
            month.first_day,
            month.last_day,
            until=stored.closed_at,
            changed_after=since if adjusts else None,
        )
        return [
            {
                "event_id": e.event_id,
                "time": e.occurred_at.isoformat(),
                "received_at": e.received_at.isoformat(),
                "quantity": str(_units(meter, e.quantity)),
                "counted": None if e.counted is None else str(_units(meter, e.counted)),
                "attributes": None if e.attributes is None else orjson.loads(e.attributes),
            }
            for e in await self._statements.events_behind(window)
        ]

    # -- exporting -----------------------------------------------------------

    async def export(self, number: int, fmt: ExportFormat) -> bytes:
        """A closed statement in ``fmt``; JSON is the kept document, byte for byte."""
        stored = await self.get(number)
        return export(stored.document, fmt, self._settings.statement_logo_path)

    async def export_preview(self, operation_name: str, fmt: ExportFormat) -> bytes:
        return export_document(
            await self.preview(operation_name), fmt, self._settings.statement_logo_path
        )
