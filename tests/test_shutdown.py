"""SIGTERM under load: in-flight calls finish, nothing accepted is lost, nothing half-stored."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx

from conftest import FakeClock, add_operation, add_token
from voxmeter.domain.models import TokenScope
from voxmeter.storage.base import Store


async def test_sigterm_under_ingestion_load_loses_no_accepted_batch(
    store: Store, clock: FakeClock, serve_process
):
    operation = await add_operation(store, clock, licenses=10, timezone="UTC")
    secret = await add_token(store, clock, operation, TokenScope.INGEST)
    server = serve_process(workers=1, concurrency_per_token=8)
    moment = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    outcomes: dict[str, int | str] = {}  # batch name -> status, or the error met
    stop = threading.Event()

    def client(number: int) -> None:
        with httpx.Client(base_url=server.base_url, headers={"wolkvox-token": secret}) as http:
            for sequence in range(1000):
                if stop.is_set():
                    return
                name = f"c{number}-b{sequence}"
                events = [
                    {"id": f"{name}-{i}", "meter": "ivr_calls", "quantity": 1, "time": moment}
                    for i in range(500)
                ]
                try:
                    outcomes[name] = http.post(
                        "/api/v2/events", json={"events": events}, timeout=30
                    ).status_code
                except httpx.HTTPError as exc:
                    outcomes[name] = type(exc).__name__
                    return

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in clients:
        thread.start()
    deadline = time.monotonic() + 30
    while sum(1 for status in outcomes.values() if status == 200) < 8:
        assert time.monotonic() < deadline, outcomes
        time.sleep(0.02)
    server.process.send_signal(signal.SIGTERM)
    # uvicorn drains in-flight calls, closes the store (lifespan), then re-raises the signal.
    assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    stop.set()
    for thread in clients:
        thread.join(timeout=60)

    stored_batches = 0
    for name, status in outcomes.items():
        ids = [f"{name}-{i}" for i in range(500)]
        found = len(await store.event_meters(operation.id, ids))
        if status == 200:
            assert found == 500, (name, found)  # accepted means stored, shutdown or not
        else:
            assert found in (0, 500), (name, status, found)  # never half a batch
        stored_batches += found == 500
    day = datetime.now(UTC).date()
    total = await store.summed_total(operation.id, "ivr_calls", day.replace(day=1), day)
    assert total == 500 * stored_batches
