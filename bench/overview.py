"""The console's overview for many operations: server time and page weight.

Operations × every billing meter, filled through the store's bulk path over
last month and this month to date, then the overview page (rendered by the
server) and its admin API call are timed one after another on loopback.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from voxmeter.contract.meters import BILLING_METERS
from voxmeter.domain.admins import IdentityKind, Role
from voxmeter.domain.clock import system_clock
from voxmeter.domain.models import LedgerEvent, NewOperation
from voxmeter.domain.usage import fingerprint
from voxmeter.services.admins import COMMAND_LINE, AdminService
from voxmeter.storage import open_store, schema
from voxmeter.storage.admin import open_admin_store

ASSETS = ("/console/static/console.css", "/console/static/console.js",
          "/console/static/vendor/chart-4.6.1.umd.min.js")  # fmt: skip


async def fill(url: str, operations: int, events: int) -> float:
    """``events`` spread evenly over the operations and meters, last month to now."""
    schema.upgrade(url)
    store = await open_store(url)
    now = datetime.now(UTC)
    start = (now.replace(day=1) - timedelta(days=1)).replace(day=1, hour=0, minute=0, second=0)
    span = max(1.0, (now - start).total_seconds() - 60)
    per_operation = events // operations
    started = time.perf_counter()
    try:
        for n in range(operations):
            operation = await store.create_operation(
                NewOperation(name=f"Operation {n:04d}", licenses=10, timezone="UTC"), now
            )
            batch = []
            for i in range(per_operation):
                meter = BILLING_METERS[i % len(BILLING_METERS)].api
                moment = start + timedelta(seconds=(i * 7919 + n) % span)
                batch.append(
                    LedgerEvent(
                        event_id=f"o{n}-{i}", meter=meter, quantity=1 + i % 5,
                        occurred_at=moment, day=moment.date(), attributes=None,
                        fingerprint=fingerprint(meter, 1 + i % 5, moment, None),
                    )
                )  # fmt: skip
            await store.record_events(operation.id, batch, now)
    finally:
        await store.close()
    return time.perf_counter() - started


async def admin_secrets(url: str) -> tuple[str, str]:
    """A viewer person's password and a viewer key."""
    store = await open_admin_store(url)
    try:
        service = AdminService(store, system_clock, timedelta(hours=1))
        _, password = await service.create(COMMAND_LINE, "bench", Role.VIEWER, IdentityKind.USER)
        _, key = await service.create(COMMAND_LINE, "bench-key", Role.VIEWER, IdentityKind.KEY)
        return password, key
    finally:
        await store.close()


def _timings(http: httpx.Client, path: str, samples: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(samples):
        started = time.perf_counter()
        response = http.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:300]
        size = len(response.content)
    return times, size


def _percentiles(times: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49], 1), "p99_ms": round(cuts[98], 1)}


def measure(base: str, password: str, key: str, samples: int) -> dict[str, Any]:
    """Page and API timed sequentially; the page's weight as a browser fetches it, gzip asked."""
    headers = {"Accept-Encoding": "gzip"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        login = http.post("/admin/api/v1/session", json={"name": "bench", "password": password})
        assert login.status_code == 200, login.text[:300]
        page_times, _ = _timings(http, "/console", samples)
        sent = 0
        for path in ("/console", *ASSETS):
            with http.stream("GET", path) as response:
                response.read()
                sent += response.num_bytes_downloaded
        html = len(http.get("/console").content)
    with httpx.Client(base_url=base, timeout=120,
                      headers={"Authorization": f"Bearer {key}"}) as api:  # fmt: skip
        api_times, api_size = _timings(api, "/admin/api/v1/overview", samples)
    return {
        "page": _percentiles(page_times),
        "api": _percentiles(api_times),
        "samples": samples,
        "page_html_kb": round(html / 1024, 1),
        "page_transferred_kb": round(sent / 1024, 1),
        "api_kb": round(api_size / 1024, 1),
    }


def run(
    url: str, operations: int, events: int, samples: int, serving: Any, server: Any
) -> dict[str, Any]:
    fill_seconds = asyncio.run(fill(url, operations, events))
    password, key = asyncio.run(admin_secrets(url))
    with serving(server(), {"VOXMETER_DATABASE_URL": url}) as (base, _):
        figures = measure(base, password, key, samples)
    return {"operations": operations, "meters": len(BILLING_METERS), "events": events,
            "fill_seconds": round(fill_seconds, 1), **figures}  # fmt: skip
