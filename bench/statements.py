"""Closing a month: many operations, every meter priced, a large ledger, reports meanwhile."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.load import load
from voxmeter.config import Settings
from voxmeter.contract.meters import BILLING_METERS, Kind
from voxmeter.domain.clock import system_clock
from voxmeter.domain.models import LedgerEvent
from voxmeter.domain.usage import fingerprint
from voxmeter.services import Services
from voxmeter.storage import open_store

PRICE_BOOK = "Bench"
_TIERS = [("1000", "0.10"), ("10000", "0.05"), (None, "0.01")]
_BATCH = 50_000


def _last_month() -> tuple[str, datetime]:
    first_of_this = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (first_of_this - timedelta(days=1)).replace(day=1)
    return f"{start:%Y-%m}", start


def _events(operation: Any, count: int, start: datetime, span: float) -> Iterator[LedgerEvent]:
    """``count`` events over every meter, spread over the month, with a campaign attribute."""
    for i in range(count):
        meter = BILLING_METERS[i % len(BILLING_METERS)]
        moment = start + timedelta(seconds=(i * 7919) % span)
        quantity = 1000 if meter.kind is Kind.MINUTES else (5 if meter.kind is Kind.GAUGE else 1)
        attributes = f'{{"campaign":"c{i % 5}"}}'
        yield LedgerEvent(
            event_id=f"bench-{i}",
            meter=meter.api,
            quantity=quantity,
            occurred_at=moment,
            day=moment.date(),
            attributes=attributes,
            fingerprint=fingerprint(meter.api, quantity, moment, attributes),
        )


async def build(url: str, operations: int, events: int) -> dict[str, Any]:
    """A price book pricing every meter, ``operations`` subscribed, ``events`` last month."""
    month, start = _last_month()
    span = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - start
    store = await open_store(url)
    try:
        services = Services.over(store, Settings(database_url=url), system_clock)
        book = services.statements
        await book.create_price_book(PRICE_BOOK, "USD", breakdown_attribute="campaign")
        for position, meter in enumerate(BILLING_METERS):
            if position % 3 == 0:
                await book.set_price(PRICE_BOOK, month, meter.api, unit_price="0.0125")
            else:
                model = "graduated" if position % 3 == 1 else "volume"
                await book.set_price(PRICE_BOOK, month, meter.api, model=model, tiers=_TIERS)
        await book.set_terms(PRICE_BOOK, month, tax_rate="0.19", minimum="100")
        started = time.perf_counter()
        per_operation = events // operations
        for number in range(operations):
            operation = await services.operations.create(
                f"Statement bench {number:04d}", licenses=10, timezone="UTC"
            )
            await book.subscribe(operation.name, PRICE_BOOK)
            batch: list[LedgerEvent] = []
            for event in _events(operation, per_operation, start, span.total_seconds() - 60):
                batch.append(event)
                if len(batch) == _BATCH:
                    await store.record_events(operation.id, batch, datetime.now(UTC))
                    batch = []
            if batch:
                await store.record_events(operation.id, batch, datetime.now(UTC))
        return {"month": month, "fill_seconds": round(time.perf_counter() - started, 1)}
    finally:
        await store.close()


def close_run(
    url: str,
    secret: str,
    month: str,
    seconds: float,
    serving: Callable[[dict[str, str]], AbstractContextManager[tuple[str, Any]]],
    report_path: str,
) -> dict[str, Any]:
    """The close's duration, and the report rate alone and while it runs (c=16)."""
    env = {"VOXMETER_DATABASE_URL": url, "VOXMETER_STATEMENT_GRACE_HOURS": "0"}
    with serving(env) as (base, _):
        alone = load(base + report_path, secret, 16, seconds)
        started = time.perf_counter()
        closer = subprocess.Popen(
            [sys.executable, "-m", "voxmeter", "statement", "close", "--month", month],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        during = load(base + report_path, secret, 16, seconds)
        _, err = closer.communicate(timeout=3600)
        elapsed = time.perf_counter() - started
        if closer.returncode != 0:
            raise RuntimeError(f"statement close failed: {err.decode()}")
    closed = int(err.decode().split("closed ", 1)[1].split()[0])
    return {
        "statements": closed,
        "close_seconds": round(elapsed, 1),
        "reports_alone_per_second": round(alone.requests_per_second),
        "reports_during_per_second": round(during.requests_per_second),
        "reports_ratio": round(during.requests_per_second / alone.requests_per_second, 3),
        # The close outlasting the load window means the whole window was contended.
        "close_outlasted_load": elapsed >= seconds,
    }


def statements_bench(
    url: str,
    secret: str,
    operations: int,
    events: int,
    seconds: float,
    serving: Callable[[dict[str, str]], AbstractContextManager[tuple[str, Any]]],
    report_path: str,
) -> dict[str, Any]:
    world = asyncio.run(build(url, operations, events))
    run = close_run(url, secret, world["month"], seconds, serving, report_path)
    return {
        "operations": operations,
        "meters": len(BILLING_METERS),
        "events": events,
        "fill_seconds": world["fill_seconds"],
        **run,
    }
