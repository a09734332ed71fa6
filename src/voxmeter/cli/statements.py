"""``voxmeter pricebook``, ``voxmeter subscribe``, ``voxmeter statement``: billing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from voxmeter.cli._common import BadInput, info, table, with_services
from voxmeter.services.statement_exports import ExportFormat
from voxmeter.services.statements import PriceBookView

_MONTH = "YYYY-MM"


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _show_book(view: PriceBookView) -> None:
    _print_json(view.to_json())


def _tier(text: str) -> tuple[str | None, str]:
    """``UP_TO:PRICE``; ``*`` as UP_TO for the last, unbounded tier."""
    up_to, sep, price = text.partition(":")
    if not sep:
        raise BadInput(f"a tier is UP_TO:UNIT_PRICE (UP_TO '*' for the last), not {text!r}")
    return (None if up_to.strip() == "*" else up_to.strip(), price.strip())


@click.group()
def pricebook() -> None:
    """Price books: what each meter costs, in versions effective from a month on."""


@pricebook.command("create")
@click.argument("name")
@click.option("--currency", required=True, help="ISO 4217 code, e.g. USD, COP, MXN.")
@click.option("--breakdown", help="Event attribute each line is broken down by (e.g. campaign).")
def pricebook_create(name: str, currency: str, breakdown: str | None) -> None:
    """Create price book NAME (no prices yet: add them with set-price)."""
    view = with_services(lambda s: s.statements.create_price_book(name, currency, breakdown))
    info(f"created price book {view.book.name!r}")
    _show_book(view)


@pricebook.command("list")
def pricebook_list() -> None:
    """List the price books."""
    views = with_services(lambda s: s.statements.price_books())
    table(
        ["name", "currency", "breakdown", "versions"],
        [
            (
                v.book.name,
                v.book.currency,
                v.book.breakdown_attribute or "-",
                ",".join(str(sheet.effective) for sheet in v.sheets) or "-",
            )
            for v in views
        ],
    )


@pricebook.command("show")
@click.argument("name")
def pricebook_show(name: str) -> None:
    """Show price book NAME with every version, as JSON."""
    _show_book(with_services(lambda s: s.statements.price_book(name)))


@pricebook.command("set-price")
@click.argument("name")
@click.argument("meter")
@click.option("--from", "effective", required=True, metavar=_MONTH, help="First month it applies.")
@click.option("--unit-price", help="Flat price per unit.")
@click.option(
    "--model",
    type=click.Choice(["flat", "graduated", "volume"]),
    default=None,
    help="Default: flat with --unit-price, graduated with --tier.",
)
@click.option("--tier", "tiers", multiple=True, metavar="UP_TO:PRICE", help="Repeat; last '*'.")
@click.option("--included", default="0", show_default=True, help="Free units a month.")
def pricebook_set_price(
    name: str,
    meter: str,
    effective: str,
    unit_price: str | None,
    model: str | None,
    tiers: tuple[str, ...],
    included: str,
) -> None:
    """Price METER in price book NAME from a month on."""
    if (unit_price is None) == (not tiers):
        raise BadInput("give either --unit-price or --tier (repeated)")
    chosen = model or ("flat" if unit_price is not None else "graduated")
    view = with_services(
        lambda s: s.statements.set_price(
            name,
            effective,
            meter,
            model=chosen,
            unit_price=unit_price or "0",
            tiers=[_tier(t) for t in tiers],
            included=included,
        )
    )
    _show_book(view)


@pricebook.command("remove-price")
@click.argument("name")
@click.argument("meter")
@click.option("--from", "effective", required=True, metavar=_MONTH)
def pricebook_remove_price(name: str, meter: str, effective: str) -> None:
    """Stop billing METER in price book NAME from a month on."""
    _show_book(with_services(lambda s: s.statements.remove_price(name, effective, meter)))


@pricebook.command("set-terms")
@click.argument("name")
@click.option("--from", "effective", required=True, metavar=_MONTH)
@click.option("--tax-rate", help="e.g. 0.19 for 19 %.")
@click.option("--minimum", help="Least a month's usage is billed, before tax.")
@click.option("--cap", help="Most a month's usage is billed, before tax.")
@click.option("--no-cap", is_flag=True, help="Remove the cap.")
def pricebook_set_terms(
    name: str,
    effective: str,
    tax_rate: str | None,
    minimum: str | None,
    cap: str | None,
    no_cap: bool,
) -> None:
    """Change the tax rate, minimum or cap of price book NAME from a month on."""
    if cap is not None and no_cap:
        raise BadInput("--cap and --no-cap exclude each other")
    terms: dict[str, Any] = {"tax_rate": tax_rate, "minimum": minimum}
    if cap is not None or no_cap:
        terms["cap"] = cap
    _show_book(with_services(lambda s: s.statements.set_terms(name, effective, **terms)))


@click.command("subscribe")
@click.argument("operation")
@click.argument("price_book")
def subscribe(operation: str, price_book: str) -> None:
    """Bill OPERATION on PRICE_BOOK (months not closed yet included)."""
    with_services(lambda s: s.statements.subscribe(operation, price_book))
    info(f"{operation!r} is billed on price book {price_book!r}")


@click.group()
def statement() -> None:
    """Statements: preview the month, close it, list, show and export them."""


_FORMAT = click.Choice([f.value for f in ExportFormat])


def _write(data: bytes, output: str | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        Path(output).write_bytes(data)
        info(f"wrote {output}")


@statement.command("preview")
@click.argument("operation")
@click.option("--format", "fmt", type=_FORMAT, default="json", show_default=True)
@click.option("--output", "-o", help="File to write (default: stdout).")
def statement_preview(operation: str, fmt: str, output: str | None) -> None:
    """The current month of OPERATION so far, rated with today's prices."""
    _write(
        with_services(lambda s: s.statements.export_preview(operation, ExportFormat(fmt))),
        output,
    )


@statement.command("close")
@click.option("--month", required=True, metavar=_MONTH)
@click.option("--operation", help="Only this operation (default: every one).")
def statement_close(month: str, operation: str | None) -> None:
    """Close MONTH: one numbered statement per operation, once; a re-run changes nothing."""
    outcome = with_services(lambda s: s.statements.close(month, operation))
    table(
        ["number", "operation_id", "month"],
        [(s.number, s.operation_id, s.month) for s in outcome.closed],
    )
    info(f"closed {len(outcome.closed)} statement(s) for {month}")
    for label, names in (
        ("already closed", outcome.already_closed),
        ("not due yet (month end + grace not reached)", outcome.not_due),
        ("not billable (no subscription or no prices in force)", outcome.not_billable),
    ):
        if names:
            info(f"{label}: {', '.join(names)}")


@statement.command("list")
@click.option("--operation")
@click.option("--month", metavar=_MONTH)
def statement_list(operation: str | None, month: str | None) -> None:
    """List closed statements."""
    found = with_services(lambda s: s.statements.list_statements(operation, month))
    rows = []
    for stored in found:
        doc = orjson.loads(stored.document)
        rows.append((stored.number, doc["operation"], stored.month, doc["total"], doc["currency"]))
    table(["number", "operation", "month", "total", "currency"], rows)


@statement.command("show")
@click.argument("number", type=int)
def statement_show(number: int) -> None:
    """Statement NUMBER as JSON, exactly as it was closed."""
    _write(with_services(lambda s: s.statements.export(number, ExportFormat.JSON)) + b"\n", None)


@statement.command("lines")
@click.argument("number", type=int)
def statement_lines(number: int) -> None:
    """Each line of statement NUMBER with the events behind it, as JSON."""
    _print_json(with_services(lambda s: s.statements.lines(number)))


@statement.command("export")
@click.argument("number", type=int)
@click.option("--format", "fmt", type=_FORMAT, default="json", show_default=True)
@click.option("--output", "-o", help="File to write (default: stdout).")
def statement_export(number: int, fmt: str, output: str | None) -> None:
    """Statement NUMBER as JSON, CSV or PDF."""
    _write(with_services(lambda s: s.statements.export(number, ExportFormat(fmt))), output)
