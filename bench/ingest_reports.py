"""Reports while batches go in, and memory under maximal bodies (SQLite, one worker).

* Report latency (one caller, one call at a time) first alone, then while
  another client sends 10,000-event batches back to back: what a report
  caller sees of ingestion sharing its worker.
* Peak server RSS while 20 clients each send a maximal body at once:
  10,000 events with attributes near their size limit, every event invalid,
  so each body is read, decoded and validated whole and nothing is stored.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

Serving = Callable[[dict[str, str]], AbstractContextManager[tuple[str, Any]]]
EVENTS = "/api/v2/events"
NDJSON = {"content-type": "application/x-ndjson"}


def _batch(prefix: str, moment: datetime) -> bytes:
    return b"\n".join(
        orjson.dumps({"id": f"{prefix}-{i}", "meter": "ivr_calls", "quantity": 1,
                      "time": moment.isoformat()})
        for i in range(10_000)
    )  # fmt: skip


def _maximal_body() -> bytes:
    """About 29 MB: 10,000 events of ~2.9 KB of attributes, each with a negative quantity."""
    attributes = {"note": "x" * 2900}
    moment = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return b"\n".join(
        orjson.dumps({"id": f"max-{i}", "meter": "ivr_calls", "quantity": -1,
                      "time": moment, "attributes": attributes})
        for i in range(10_000)
    )  # fmt: skip


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "calls": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def _reports_until(http: httpx.AsyncClient, path: str, done: asyncio.Event) -> list[float]:
    latencies = []
    while not done.is_set():
        started = time.perf_counter()
        response = await http.get(path)
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:300]
    return latencies


async def _during_ingestion(
    base: str, report: str, ingest: str, path: str, batches: int, alone_seconds: float
) -> dict[str, Any]:
    moment = datetime.now(UTC) - timedelta(minutes=1)
    bodies = [_batch(f"ir-{b}", moment) for b in range(batches)]
    async with (
        httpx.AsyncClient(base_url=base, headers={"wolkvox-token": report}) as reports,
        httpx.AsyncClient(
            base_url=base, headers={"wolkvox-token": ingest, **NDJSON}, timeout=120
        ) as uploads,
    ):
        done = asyncio.Event()
        asyncio.get_running_loop().call_later(alone_seconds, done.set)
        alone = await _reports_until(reports, path, done)
        done = asyncio.Event()
        measuring = asyncio.create_task(_reports_until(reports, path, done))
        started = time.perf_counter()
        for body in bodies:
            response = await uploads.post(EVENTS, content=body)
            assert response.status_code == 200, response.text[:300]
        ingest_seconds = time.perf_counter() - started
        done.set()
        during = await measuring
    return {
        "batches": batches,
        "ingest_seconds": round(ingest_seconds, 2),
        "alone": _percentiles(alone),
        "during": _percentiles(during),
    }


def _peak_rss(pid: int, rss_mb: Callable[[int], float], stop: threading.Event) -> list[float]:
    peak = [rss_mb(pid)]

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.01)

    threading.Thread(target=sample, daemon=True).start()
    return peak


async def _parallel_bodies(base: str, ingest: str, clients: int) -> Counter[int]:
    body = _maximal_body()
    headers = {"wolkvox-token": ingest, **NDJSON}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
        answers = await asyncio.gather(*(http.post(EVENTS, content=body) for _ in range(clients)))
    return Counter(answer.status_code for answer in answers)


def run(
    serving: Serving,
    rss_mb: Callable[[int], float],
    url: str,
    secrets: dict[str, str],
    report_path: str,
    batches: int,
    seconds: float,
) -> dict[str, Any]:
    with serving({"VOXMETER_DATABASE_URL": url}) as (base, process):
        latency = asyncio.run(
            _during_ingestion(
                base, secrets["report"], secrets["ingest"], report_path, batches, seconds
            )
        )
        stop = threading.Event()
        idle_mb = rss_mb(process.pid)
        peak = _peak_rss(process.pid, rss_mb, stop)
        statuses = asyncio.run(_parallel_bodies(base, secrets["ingest"], 20))
        stop.set()
    return {
        **latency,
        "bodies": {
            "clients": 20,
            "idle_rss_mb": round(idle_mb, 1),
            "peak_rss_mb": round(peak[0], 1),
            "statuses": {str(status): count for status, count in sorted(statuses.items())},
        },
    }
