"""Alerts: ingestion with and without active rules, and delivery latency to a local receiver."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson

from voxmeter.config import Settings
from voxmeter.domain.clock import system_clock
from voxmeter.services import Services
from voxmeter.storage import open_store

RULES = 100


async def add_rules(url: str, count: int, levels: Callable[[int], list[str]]) -> None:
    """``count`` rules on the Bench operation's ivr_calls, each with ``levels(i)``."""
    store = await open_store(url)
    try:
        alerts = Services.over(store, Settings(database_url=url), system_clock).alerts
        for i in range(count):
            await alerts.add_rule("Bench", "ivr_calls", levels(i))
    finally:
        await store.close()


def ingestion(
    prepared: Callable[[str], dict[str, Any]],
    ingest_rate: Callable[[str, str, int], dict[str, Any]],
    urls: tuple[str, str],
    batches: int,
) -> dict[str, Any]:
    """The same batches into a database without rules and one with ``RULES`` rules.

    The rules' levels are spread over the run's total, so some are crossed
    (and recorded) as it goes, as they would be in use.
    """
    bare_url, ruled_url = urls
    bare = ingest_rate(bare_url, prepared(bare_url)["ingest"], batches)
    world = prepared(ruled_url)
    total = batches * 10_000
    asyncio.run(add_rules(ruled_url, RULES, lambda i: [str(total * (i + 1) // (RULES // 2))]))
    ruled = ingest_rate(ruled_url, world["ingest"], batches)
    return {
        "rules": RULES,
        "without_rules": bare,
        "with_rules": ruled,
        "ratio": round(ruled["events_per_second"] / bare["events_per_second"], 3),
    }


class Receiver:
    """Webhooks on 127.0.0.1: the monotonic time each alert id first arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = self.rfile.read(int(self.headers["content-length"]))
                level = orjson.loads(payload)["data"]["level"]
                receiver.arrived.setdefault(level, time.monotonic())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


async def add_endpoint(url: str, receiver: str) -> None:
    store = await open_store(url)
    try:
        alerts = Services.over(store, Settings(database_url=url), system_clock).alerts
        await alerts.add_endpoint(receiver)
    finally:
        await store.close()


def delivery_latency(
    url: str,
    secret: str,
    crossings: int,
    serving: Callable[[dict[str, str]], AbstractContextManager[tuple[str, Any]]],
) -> dict[str, Any]:
    """Seconds from sending a batch that crosses a level to the receiver getting its alert.

    One rule with a level at each of 1 … ``crossings`` calls; each batch is
    one call, so crosses one level, and the next is sent once its alert
    arrived. The server runs with its default delivery settings, so an idle
    worker's poll interval is part of what is measured.
    """
    receiver = Receiver()
    try:
        asyncio.run(add_endpoint(url, receiver.url))
        asyncio.run(add_rules(url, 1, lambda _: [str(n) for n in range(1, crossings + 1)]))
        moment = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        latencies = []
        with serving({"VOXMETER_DATABASE_URL": url}) as (base, _):
            headers = {"wolkvox-token": secret}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
                for n in range(1, crossings + 1):
                    event = {"id": f"cross-{n}", "meter": "ivr_calls", "quantity": 1,
                             "time": moment}  # fmt: skip
                    sent = time.monotonic()
                    answer = http.post("/api/v2/events", json={"events": [event]})
                    assert answer.status_code == 200, answer.text[:300]
                    deadline = sent + 60
                    while str(n) not in receiver.arrived:
                        assert time.monotonic() < deadline, f"alert {n} not delivered"
                        time.sleep(0.005)
                    latencies.append(receiver.arrived[str(n)] - sent)
    finally:
        receiver.close()
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "crossings": crossings,
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
    }
