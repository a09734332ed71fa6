"""Statements on both stores: rating, month close, adjustments, exports."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from conftest import FakeClock
from ledger_helpers import ledger_event
from voxmeter.config import Settings
from voxmeter.contract.errors import ApiError
from voxmeter.domain.models import Operation
from voxmeter.services import Services
from voxmeter.services.statement_exports import ExportFormat
from voxmeter.storage import open_store
from voxmeter.storage.base import Store

# November 2026 ends in Bogota at 05:00 UTC on December 1; with the default
# 48-hour grace it may close from 05:00 UTC on December 3.
NOVEMBER_CLOSABLE = datetime.fromisoformat("2026-12-03T05:00:00+00:00")
DECEMBER_CLOSABLE = datetime.fromisoformat("2027-01-03T05:00:00+00:00")


@pytest.fixture
def services(store: Store, database_url: str, clock: FakeClock) -> Services:
    settings = Settings(
        database_url=database_url,
        statement_issuer_name="Acme Billing SAS",
        statement_issuer_address="Calle 100 # 8-55\nBogota",
    )
    return Services.over(store, settings, clock)


async def price_book(services: Services, name: str = "Standard") -> None:
    book = services.statements
    await book.create_price_book(name, "USD", breakdown_attribute="campaign")
    await book.set_price(
        name,
        "2026-10",
        "ivr_calls",
        model="graduated",
        tiers=[("100", "0.10"), ("1000", "0.05"), (None, "0.01")],
    )
    await book.set_price(name, "2026-10", "ivr_minutes", unit_price="0.10")
    await book.set_price(
        name, "2026-10", "asr_calls", model="volume", tiers=[("100", "0.10"), (None, "0.05")]
    )
    await book.set_terms(name, "2026-10", tax_rate="0.19", minimum="50")


async def operation(services: Services, name: str = "Acme BPO") -> Operation:
    created = await services.operations.create(name, licenses=4, timezone="America/Bogota")
    await services.statements.subscribe(name, "Standard")
    return created


async def november_usage(services: Services, acme: Operation) -> None:
    await services.usage.record(
        acme,
        [
            {"id": "c1", "meter": "ivr_calls", "quantity": 1000,
             "time": "2026-11-10T10:00:00-05:00", "attributes": {"campaign": "north"}},
            {"id": "c2", "meter": "ivr_calls", "quantity": 500,
             "time": "2026-11-20T10:00:00-05:00", "attributes": {"campaign": "south"}},
            {"id": "m1", "meter": "ivr_minutes", "quantity": "12.345",
             "time": "2026-11-11T10:00:00-05:00"},
            {"id": "a1", "meter": "asr_calls", "quantity": 500,
             "time": "2026-11-12T10:00:00-05:00"},
        ],
    )  # fmt: skip


def amounts(doc: dict[str, Any]) -> list[tuple[str, str | None, str, str]]:
    return [
        (line["kind"], line["meter"], line["quantity"], line["amount"]) for line in doc["lines"]
    ]


async def test_a_closed_month_has_the_hand_computed_amounts(
    services: Services, clock: FakeClock
) -> None:
    await price_book(services)
    acme = await operation(services)
    await november_usage(services, acme)
    clock.now = NOVEMBER_CLOSABLE
    outcome = await services.statements.close("2026-11")
    assert [s.number for s in outcome.closed] == [1]
    doc = orjson.loads(await services.statements.export(1, ExportFormat.JSON))
    assert amounts(doc) == [
        ("usage", "asr_calls", "500", "25.00"),  # volume: all 500 at 0.05
        ("usage", "ivr_calls", "1500", "60.00"),  # 100 x 0.10 + 900 x 0.05 + 500 x 0.01
        ("usage", "ivr_minutes", "12.345", "1.23"),  # 1.2345, half-even
    ]
    # 86.23 x 0.19 = 16.3837
    assert (doc["subtotal"], doc["tax"], doc["total"]) == ("86.23", "16.38", "102.61")
    assert doc["lines"][1]["breakdown"] == {"north": "1000", "south": "500"}
    assert doc["issuer"]["name"] == "Acme Billing SAS"
    rows = list(
        csv.DictReader(
            io.StringIO((await services.statements.export(1, ExportFormat.CSV)).decode())
        )
    )
    assert [(r["kind"], r["amount"]) for r in rows][-3:] == [
        ("subtotal", "86.23"),
        ("tax", "16.38"),
        ("total", "102.61"),
    ]


async def test_a_month_below_the_minimum_is_lifted_to_it(
    services: Services, clock: FakeClock
) -> None:
    await price_book(services)
    acme = await operation(services)
    await services.usage.record(
        acme, [{"id": "x", "meter": "ivr_calls", "quantity": 10, "time": "2026-11-10T10:00:00Z"}]
    )
    preview = await services.statements.preview("Acme BPO")
    assert preview["number"] is None and preview["month"] == "2026-11"
    assert amounts(preview)[-1] == ("minimum", None, "0", "49.00")  # 10 x 0.10 = 1.00
    assert (preview["subtotal"], preview["tax"], preview["total"]) == ("50.00", "9.50", "59.50")


async def test_a_month_closes_once_after_its_grace_numbered_without_gaps(
    services: Services, clock: FakeClock
) -> None:
    await price_book(services)
    await operation(services, "Acme BPO")
    await operation(services, "Beta Calls")
    await services.operations.create("Unbilled", licenses=1)
    clock.now = NOVEMBER_CLOSABLE
    clock.advance(seconds=-1)
    early = await services.statements.close("2026-11")
    assert (early.closed, sorted(early.not_due)) == ([], ["Acme BPO", "Beta Calls", "Unbilled"])
    clock.now = NOVEMBER_CLOSABLE
    first = await services.statements.close("2026-11")
    assert [s.number for s in first.closed] == [1, 2]
    assert first.not_billable == ["Unbilled"]
    before = [s.document for s in await services.statements.list_statements()]
    clock.advance(hours=5)
    again = await services.statements.close("2026-11")
    assert (again.closed, sorted(again.already_closed)) == ([], ["Acme BPO", "Beta Calls"])
    assert [s.document for s in await services.statements.list_statements()] == before


CLOSE_AT = """
import sys, time
from voxmeter.cli import main
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
main(["statement", "close", *sys.argv[2:]])
"""


def test_processes_closing_at_once_keep_one_statement_per_operation_without_gaps(
    database_url: str, tmp_path: Path
) -> None:
    async def prepare(store: Store, settings: Settings) -> None:
        services = Services.over(store, settings, FakeClock())
        await price_book(services)
        for number in range(12):
            acme = await operation(services, f"Operation {number}")
            event = ledger_event(acme, "ivr_calls", 100 + number, "2026-10-15T12:00:00Z", "e")
            await store.record_events(acme.id, [event], datetime.fromisoformat("2026-10-15T12:00Z"))

    async def run() -> None:
        store = await open_store(database_url)
        try:
            await prepare(store, Settings(database_url=database_url))
        finally:
            await store.close()

    asyncio.run(run())
    # The real clock is well past October 2026's end; no grace to wait out.
    env = {
        **os.environ,
        "VOXMETER_DATABASE_URL": database_url,
        "VOXMETER_STATEMENT_GRACE_HOURS": "0",
    }
    # Each closer imports everything first, then waits for the same instant,
    # so they read, rate and write at the same time: two close every
    # operation, and two close one each, which race for the next numbers.
    start_at = str(time.time() + 5)
    command = [sys.executable, "-c", CLOSE_AT, start_at, "--month", "2026-10"]
    closers = [
        subprocess.Popen([*command, *only], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for only in ([], [], ["--operation", "Operation 11"], ["--operation", "Operation 5"])
    ]
    for closer in closers:
        _, err = closer.communicate(timeout=120)
        assert closer.returncode == 0, err
    listed = subprocess.run(
        [sys.executable, "-m", "voxmeter", "statement", "list", "--month", "2026-10"],
        env=env, capture_output=True, check=True, text=True,
    ).stdout.splitlines()[1:]  # fmt: skip
    numbers = sorted(int(row.split()[0]) for row in listed)
    operations = sorted(" ".join(row.split()[1:3]) for row in listed)
    assert numbers == list(range(1, 13))
    assert operations == sorted(f"Operation {n}" for n in range(12))


async def test_a_late_correction_becomes_an_adjustment_and_the_closed_month_stays(
    services: Services, store: Store, clock: FakeClock
) -> None:
    await price_book(services)
    acme = await operation(services)
    await november_usage(services, acme)
    clock.now = NOVEMBER_CLOSABLE
    await services.statements.close("2026-11")
    closed = await services.statements.export(1, ExportFormat.JSON)

    clock.advance(days=2)
    await services.usage.correct(acme, [{"id": "c2", "action": "void", "reason": "test call"}])
    late = ledger_event(acme, "ivr_minutes", "2.5", "2026-11-30T20:00:00-05:00", "m-late")
    await store.record_events(acme.id, [late], clock.now)
    await services.usage.record(
        acme, [{"id": "d1", "meter": "ivr_calls", "quantity": 50, "time": "2026-12-04T10:00:00Z"}]
    )
    assert await services.statements.export(1, ExportFormat.JSON) == closed

    adjustments = [
        (line["meter"], line["quantity"], line["amount"], line["adjusts"])
        for line in (await services.statements.preview("Acme BPO"))["lines"]
        if line["kind"] == "adjustment"
    ]
    november = {"statement": 1, "month": "2026-11"}
    expected = [
        # 1500 -> 1000 calls: 60.00 -> 55.00
        ("ivr_calls", "-500", "-5.00", {**november, "item": "ivr_calls"}),
        # 12.345 -> 14.845 minutes: 1.23 -> 1.48 (1.4845, half-even)
        ("ivr_minutes", "2.500", "0.25", {**november, "item": "ivr_minutes"}),
    ]
    assert adjustments == expected

    clock.now = DECEMBER_CLOSABLE
    outcome = await services.statements.close("2026-12")
    assert [s.number for s in outcome.closed] == [2]
    december = orjson.loads(await services.statements.export(2, ExportFormat.JSON))
    assert [
        (line["meter"], line["quantity"], line["amount"], line["adjusts"])
        for line in december["lines"]
        if line["kind"] == "adjustment"
    ] == expected
    # Usage 50 calls = 5.00, minimum lifts it to 50.00; adjustments -4.75 on top.
    assert (december["subtotal"], december["tax"], december["total"]) == ("45.25", "8.60", "53.85")
    assert await services.statements.export(1, ExportFormat.JSON) == closed

    lines = await services.statements.lines(2)
    behind = {
        (line["kind"], line["meter"]): [(e["event_id"], e["counted"]) for e in line["events"]]
        for line in lines
    }
    assert behind[("adjustment", "ivr_calls")] == [("c2", None)]
    assert behind[("adjustment", "ivr_minutes")] == [("m-late", "2.500")]
    assert behind[("usage", "ivr_calls")] == [("d1", "50")]
    first = {line["meter"]: line["events"] for line in await services.statements.lines(1)}
    # As it counted at the close: c2 not voided yet, m-late not received yet.
    assert [(e["event_id"], e["counted"]) for e in first["ivr_calls"]] == [
        ("c1", "1000"),
        ("c2", "500"),
    ]
    assert [e["event_id"] for e in first["ivr_minutes"]] == ["m1"]

    # Billed once: the next close finds nothing more to adjust.
    clock.now = DECEMBER_CLOSABLE.replace(month=2)
    await services.statements.close("2027-01")
    january = orjson.loads(await services.statements.export(3, ExportFormat.JSON))
    assert [line["kind"] for line in january["lines"]].count("adjustment") == 0


async def test_price_changes_apply_from_their_month_and_never_to_a_closed_one(
    services: Services, clock: FakeClock
) -> None:
    await price_book(services)
    acme = await operation(services)
    await november_usage(services, acme)
    await services.statements.set_price("Standard", "2026-12", "ivr_calls", unit_price="0.02")
    clock.now = NOVEMBER_CLOSABLE
    await services.statements.close("2026-11")
    november = orjson.loads(await services.statements.export(1, ExportFormat.JSON))
    assert amounts(november)[1] == ("usage", "ivr_calls", "1500", "60.00")
    with pytest.raises(ApiError) as refused:
        await services.statements.set_price("Standard", "2026-11", "ivr_calls", unit_price="1")
    assert refused.value.status == 409
    await services.statements.create_price_book("Pesos", "COP")
    with pytest.raises(ApiError) as refused:
        await services.statements.subscribe("Acme BPO", "Pesos")
    assert refused.value.status == 409
    clock.advance(days=10)
    await services.usage.record(
        acme, [{"id": "d1", "meter": "ivr_calls", "quantity": 1500, "time": "2026-12-10T10:00Z"}]
    )
    december = await services.statements.preview("Acme BPO")
    assert amounts(december)[1] == ("usage", "ivr_calls", "1500", "30.00")  # 1500 x 0.02
    assert december["price_sheet"]["effective"] == "2026-12"


async def test_bad_input_is_refused_and_changes_nothing(services: Services) -> None:
    await price_book(services)
    for call, status in (
        (services.statements.create_price_book("Standard", "USD"), 409),
        (services.statements.create_price_book("Other", "XYZ"), 400),
        (services.statements.set_price("Standard", "2026-13", "ivr_calls", unit_price="1"), 400),
        (services.statements.set_price("Standard", "2026-12", "nope", unit_price="1"), 400),
        (services.statements.set_price("Standard", "2026-12", "ivr_calls", unit_price="-1"), 400),
        (services.statements.set_price("Missing", "2026-12", "ivr_calls", unit_price="1"), 404),
        (services.statements.preview("Nobody"), 404),
        (services.statements.export(99, ExportFormat.JSON), 404),
    ):
        with pytest.raises(ApiError) as refused:
            await call
        assert refused.value.status == status
    view = await services.statements.price_book("Standard")
    assert [str(sheet.effective) for sheet in view.sheets] == ["2026-10"]
    assert [b.book.name for b in await services.statements.price_books()] == ["Standard"]


async def test_the_pdf_shows_the_totals(
    services: Services, clock: FakeClock, tmp_path: Path
) -> None:
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: the PDF's text cannot be read")
    await price_book(services)
    acme = await operation(services)
    await november_usage(services, acme)
    clock.now = NOVEMBER_CLOSABLE
    await services.statements.close("2026-11")
    pdf = tmp_path / "statement.pdf"
    pdf.write_bytes(await services.statements.export(1, ExportFormat.PDF))
    text = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], capture_output=True, check=True, text=True
    ).stdout
    for expected in (
        "Acme Billing SAS",
        "Statement 1",
        "Acme BPO",
        "2026-11",
        "86.23 USD",
        "16.38 USD",
        "102.61 USD",
    ):
        assert expected in text
