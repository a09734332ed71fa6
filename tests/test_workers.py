"""Several worker processes sharing one database behave as one: limits and ledger exact."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import httpx

from conftest import FakeClock, add_operation, add_token
from voxmeter.domain import tokens
from voxmeter.domain.models import TokenScope
from voxmeter.storage.base import Store

IVR = "/api/v2/billing.php?api=ivr_calls"
SIMULTANEOUS = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"


def fire(base_url: str, secret: str, count: int, parallel: int) -> list[httpx.Response]:
    """``count`` calls from ``parallel`` threads, released together by a barrier."""
    barrier = Barrier(parallel)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, headers={"wolkvox-token": secret}) as http:
            if count == parallel:
                barrier.wait()
            return http.get(IVR, timeout=60)

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, range(count)))


async def test_quota_is_exact_across_workers(store: Store, clock: FakeClock, serve_process):
    operation = await add_operation(store, clock, licenses=1)
    secret = await add_token(store, clock, operation)
    server = serve_process(workers=2, calls_per_license=25, concurrency_per_token=64)
    answers = fire(server.base_url, secret, count=80, parallel=16)
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 25
    assert statuses.count(403) == 55
    assert {a.json()["msg"] for a in answers if a.status_code == 403} == {"TOKEN LIMIT EXCEEDED"}
    day = operation.local_date(datetime.now(UTC))
    usage = await store.calls_today(tokens.token_id_of(secret) or "", operation.id, day)
    assert (usage.token_used, usage.operation_used) == (25, 25)


async def test_simultaneous_calls_are_exact_across_workers(
    store: Store, clock: FakeClock, serve_process
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    server = serve_process(workers=2, simulated_latency_seconds=1.5)
    answers = fire(server.base_url, secret, count=8, parallel=8)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 403, 403, 403, 403, 403, 403]
    assert {a.json()["msg"] for a in answers if a.status_code == 403} == {SIMULTANEOUS}


async def test_concurrent_overlapping_ingestion_is_exact_across_workers(
    store: Store, clock: FakeClock, serve_process
):
    """Six clients send overlapping batches (each event in two of them) at once."""
    operation = await add_operation(store, clock, licenses=5, timezone="UTC")
    secret = await add_token(store, clock, operation, TokenScope.INGEST)
    server = serve_process(workers=2, concurrency_per_token=16)
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    if moment.day == 1 and moment.hour == 0:
        moment += timedelta(minutes=2)  # stay inside the month the server sees

    def batch(start: int) -> dict:
        return {
            "events": [
                {"id": f"cdr-{i}", "meter": "ivr_calls", "quantity": 1 + i % 4,
                 "time": moment.isoformat()}
                for i in range(start, start + 2000)
            ]
        }  # fmt: skip

    starts = [0, 1000, 2000, 3000, 4000, 5000]  # batch k overlaps batch k+1 by half
    barrier = Barrier(len(starts))

    def send(start: int) -> httpx.Response:
        with httpx.Client(base_url=server.base_url, headers={"wolkvox-token": secret}) as http:
            barrier.wait()
            return http.post("/api/v2/events", json=batch(start), timeout=60)

    with ThreadPoolExecutor(len(starts)) as pool:
        answers = list(pool.map(send, starts))
    assert {a.status_code for a in answers} == {200}
    accepted = sum(a.json()["data"][0]["accepted"] for a in answers)
    assert accepted == 7000  # ids 0..6999, each stored once
    day = moment.date()
    total = await store.summed_total(operation.id, "ivr_calls", day.replace(day=1), day)
    assert total == sum(1 + i % 4 for i in range(7000))
