"""``/admin/api/v1``: price books, subscriptions, previews, month close and statements.

The wire side of :class:`voxmeter.services.statements.StatementService`, the
same use cases ``voxmeter pricebook``, ``subscribe`` and ``statement`` call.
Viewers read; admins change price books, subscribe operations and close
months, and every such change is written to the audit log.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from voxmeter.contract import errors
from voxmeter.domain.admins import Role
from voxmeter.server.admin.api import _done, _field, _found, _object
from voxmeter.server.admin.auth import admin_caller
from voxmeter.services.statement_exports import ExportFormat
from voxmeter.services.statements import CloseOutcome, PriceBookView
from voxmeter.storage.statements import StoredStatement

MEDIA_TYPES = {
    ExportFormat.JSON: "application/json",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.PDF: "application/pdf",
}
# Statement numbers are PostgreSQL bigints: longer digit strings are refused, not overflowed.
MAX_NUMBER_DIGITS = 18


def statement_summary(stored: StoredStatement) -> dict[str, Any]:
    doc = orjson.loads(stored.document)
    return {
        "number": stored.number,
        "operation": doc["operation"],
        "month": stored.month,
        "currency": doc["currency"],
        "subtotal": doc["subtotal"],
        "tax": doc["tax"],
        "total": doc["total"],
        "closed_at": stored.closed_at.isoformat(),
    }


def close_view(month: str, outcome: CloseOutcome) -> dict[str, Any]:
    return {
        "month": month,
        "closed": [statement_summary(s) for s in outcome.closed],
        "already_closed": outcome.already_closed,
        "not_due": outcome.not_due,
        "not_billable": outcome.not_billable,
    }


def _decimal_text(document: dict[str, Any], name: str) -> str | None:
    """A money or quantity field: a JSON string (or integer), never a float that rounds."""
    value = document.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise errors.invalid_parameter(name, 'a decimal number as a JSON string, e.g. "0.015"')
    return value


def _tiers(document: dict[str, Any]) -> list[tuple[str | None, str]]:
    raw = document.get("tiers")
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise errors.invalid_parameter("tiers", "a list of {up_to, unit_price} objects")
    return [(_decimal_text(t, "up_to"), _decimal_text(t, "unit_price") or "") for t in raw]


def _number(request: Request) -> int:
    text = request.path_params["number"]
    if not text.isdigit() or len(text) > MAX_NUMBER_DIGITS or int(text) < 1:
        raise errors.invalid_parameter("number", "a statement number (1, 2, …)")
    return int(text)


def _format(request: Request) -> ExportFormat:
    try:
        return ExportFormat(request.query_params.get("format", "json"))
    except ValueError:
        raise errors.invalid_parameter("format", "json, csv or pdf") from None


def _file(data: bytes, fmt: ExportFormat, stem: str) -> Response:
    return Response(
        data,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt.value}"'},
    )


# -- price books -------------------------------------------------------------------


async def list_price_books(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    return _found([v.to_json() for v in await console.services.statements.price_books()])


async def create_price_book(request: Request) -> Response:
    console, caller = await admin_caller(request, Role.ADMIN)
    document = await _object(request)
    name = _field(document, "name", str, "")
    currency = _field(document, "currency", str, "")
    breakdown = _field(document, "breakdown_attribute", str)
    view = await console.admins.audited(
        caller, "pricebook.create", name, None,
        lambda: console.services.statements.create_price_book(name, currency, breakdown),
        PriceBookView.to_json,
    )  # fmt: skip
    return _done("PRICE BOOK CREATED", [view.to_json()])


async def show_price_book(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    view = await console.services.statements.price_book(request.path_params["book"])
    return _found([view.to_json()])


async def set_price(request: Request) -> Response:
    """Price a meter from a month on: ``unit_price`` (flat) or ``tiers`` (graduated/volume)."""
    console, caller = await admin_caller(request, Role.ADMIN)
    statements = console.services.statements
    before = await statements.price_book(request.path_params["book"])
    document = await _object(request)
    meter = _field(document, "meter", str, "")
    effective = _field(document, "from", str, "")
    unit_price, tiers = _decimal_text(document, "unit_price"), _tiers(document)
    if (unit_price is None) == (not tiers):
        raise errors.invalid_parameter("unit_price/tiers", "give either unit_price or tiers")
    model = _field(document, "model", str) or ("flat" if unit_price is not None else "graduated")
    view = await console.admins.audited(
        caller, "pricebook.set-price", f"{before.book.name}/{meter}", before.to_json(),
        lambda: statements.set_price(
            before.book.name, effective, meter, model=model, unit_price=unit_price or "0",
            tiers=tiers, included=_decimal_text(document, "included") or "0",
        ),
        PriceBookView.to_json,
    )  # fmt: skip
    return _done("PRICE SET", [view.to_json()])


async def set_terms(request: Request) -> Response:
    """Tax rate, minimum, cap from a month on; ``"cap": null`` removes the cap."""
    console, caller = await admin_caller(request, Role.ADMIN)
    statements = console.services.statements
    before = await statements.price_book(request.path_params["book"])
    document = await _object(request)
    effective = _field(document, "from", str, "")
    terms: dict[str, Any] = {
        "tax_rate": _decimal_text(document, "tax_rate"),
        "minimum": _decimal_text(document, "minimum"),
    }
    if "cap" in document:
        terms["cap"] = _decimal_text(document, "cap")
    view = await console.admins.audited(
        caller, "pricebook.set-terms", before.book.name, before.to_json(),
        lambda: statements.set_terms(before.book.name, effective, **terms),
        PriceBookView.to_json,
    )  # fmt: skip
    return _done("TERMS SET", [view.to_json()])


# -- operations ----------------------------------------------------------------------


async def subscribe(request: Request) -> Response:
    console, caller = await admin_caller(request, Role.ADMIN)
    statements = console.services.statements
    name = request.path_params["name"]
    current = await statements.subscription(name)
    document = await _object(request)
    book = _field(document, "price_book", str, "")
    await console.admins.audited(
        caller, "operation.subscribe", name, {"price_book": current},
        lambda: statements.subscribe(name, book),
        lambda _: {"price_book": book},
    )  # fmt: skip
    return _done("SUBSCRIBED", [{"operation": name, "price_book": book}])


async def preview(request: Request) -> Response:
    """The operation's current month so far: in the envelope, or a CSV or PDF file."""
    console, _ = await admin_caller(request, Role.VIEWER)
    statements = console.services.statements
    name = request.path_params["name"]
    fmt = _format(request)
    if fmt is ExportFormat.JSON:
        return _found([await statements.preview(name)])
    return _file(await statements.export_preview(name, fmt), fmt, "preview")


# -- statements ------------------------------------------------------------------------


async def close(request: Request) -> Response:
    """Close a month for every operation, or one (``operation``); a re-run changes nothing."""
    console, caller = await admin_caller(request, Role.ADMIN)
    document = await _object(request)
    month = _field(document, "month", str, "")
    operation = _field(document, "operation", str)
    target = month if operation is None else f"{operation}/{month}"
    outcome = await console.admins.audited(
        caller, "statement.close", target, None,
        lambda: console.services.statements.close(month, operation),
        lambda done: close_view(month, done),
    )  # fmt: skip
    return _done("MONTH CLOSED", [close_view(month, outcome)])


async def list_statements(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    query = request.query_params
    found = await console.services.statements.list_statements(
        query.get("operation") or None, query.get("month") or None
    )
    return _found([statement_summary(s) for s in found])


async def show_statement(request: Request) -> Response:
    """The statement as it was closed (the kept document)."""
    console, _ = await admin_caller(request, Role.VIEWER)
    stored = await console.services.statements.get(_number(request))
    return _found([orjson.loads(stored.document)])


async def statement_lines(request: Request) -> Response:
    """Each line with the ledger events behind it."""
    console, _ = await admin_caller(request, Role.VIEWER)
    return _found(await console.services.statements.lines(_number(request)))


async def export_statement(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    number, fmt = _number(request), _format(request)
    data = await console.services.statements.export(number, fmt)
    return _file(data, fmt, f"statement-{number}")
