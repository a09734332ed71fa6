"""A statement document as JSON (as kept), CSV (one row per line) or PDF (to send)."""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from fpdf import FPDF


class ExportFormat(enum.StrEnum):
    JSON = "json"
    CSV = "csv"
    PDF = "pdf"


CSV_COLUMNS = (
    "statement", "operation", "month", "line", "kind", "meter", "description", "quantity",
    "billable", "model", "amount", "currency", "adjusts_statement", "adjusts_month",
    "adjusts_item",
)  # fmt: skip


def encode(doc: Mapping[str, Any]) -> str:
    """A document as kept: JSON, keys sorted, indented, so it diffs and reads well."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode()


def to_csv(doc: Mapping[str, Any]) -> bytes:
    """One row per line, then the subtotal, tax and total rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    head = (doc["number"] or "", doc["operation"], doc["month"])
    for position, line in enumerate(doc["lines"], start=1):
        adjusts = line["adjusts"] or {}
        writer.writerow((
            *head, position, line["kind"], line["meter"] or "", line["description"],
            line["quantity"], line["billable"], line["model"] or "", line["amount"],
            doc["currency"], adjusts.get("statement", ""), adjusts.get("month", ""),
            adjusts.get("item", ""),
        ))  # fmt: skip
    for kind in ("subtotal", "tax", "total"):
        writer.writerow(
            (*head, "", kind, "", "", "", "", "", doc[kind], doc["currency"], "", "", "")
        )
    return out.getvalue().encode()


def _latin1(text: str) -> str:
    """The PDF's core fonts are Latin-1: other characters print as '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _line_label(line: Mapping[str, Any]) -> str:
    if line["kind"] == "adjustment":
        adjusts = line["adjusts"]
        return (
            f"Adjustment: statement {adjusts['statement']} ({adjusts['month']}), {adjusts['item']}"
        )
    if line["kind"] in ("minimum", "cap"):
        return str(line["description"]).capitalize()
    label = str(line["meter"])
    if line["model"] and line["tiers"]:
        prices = ", ".join(f"{t['quantity']} x {t['unit_price']}" for t in line["tiers"])
        label += f" ({line['model']}: {prices})"
    return label


def to_pdf(doc: Mapping[str, Any], logo_path: str = "") -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    if logo_path and Path(logo_path).is_file():
        pdf.image(logo_path, x=160, y=10, w=35)
    issuer = doc["issuer"]
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 8, _latin1(issuer["name"]), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    for address_line in str(issuer["address"]).splitlines():
        pdf.cell(0, 5, _latin1(address_line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("Helvetica", "B", 13)
    title = "Statement preview" if doc["number"] is None else f"Statement {doc['number']}"
    pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for label, value in (
        ("Operation", doc["operation"]),
        ("Month", doc["month"]),
        ("Price book", doc["price_book"]),
        ("Currency", doc["currency"]),
        ("Closed", doc["closed_at"] or "not closed"),
    ):
        pdf.cell(0, 6, _latin1(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 9)
    with pdf.table(col_widths=(110, 35, 35), text_align=("LEFT", "RIGHT", "RIGHT")) as table:
        table.row(("Item", "Quantity", f"Amount ({doc['currency']})"))
        pdf.set_font("Helvetica", size=9)
        for line in doc["lines"]:
            quantity = line["quantity"] if line["meter"] else ""
            table.row((_latin1(_line_label(line)), quantity, line["amount"]))
    pdf.ln(4)
    pdf.set_font("Helvetica", size=10)
    tax_percent = f"{float(doc['tax_rate']) * 100:g}"
    for label, value in (
        ("Subtotal", doc["subtotal"]),
        (f"Tax ({tax_percent} %)", doc["tax"]),
        ("Total", doc["total"]),
    ):
        if label == "Total":
            pdf.set_font("Helvetica", "B", 11)
        pdf.cell(145, 7, label, align="R")
        pdf.cell(35, 7, f"{value} {doc['currency']}", align="R", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def export(stored_document: str, fmt: ExportFormat, logo_path: str = "") -> bytes:
    """JSON is the kept document itself, byte for byte."""
    if fmt is ExportFormat.JSON:
        return stored_document.encode()
    doc = orjson.loads(stored_document)
    return to_csv(doc) if fmt is ExportFormat.CSV else to_pdf(doc, logo_path)


def export_document(doc: Mapping[str, Any], fmt: ExportFormat, logo_path: str = "") -> bytes:
    """A document not kept (a preview) in ``fmt``."""
    return export(encode(doc), fmt, logo_path)
