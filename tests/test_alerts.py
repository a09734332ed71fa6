"""Hard caps and alert rules, on both stores, through the services every entry point calls."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from conftest import FakeClock, RunningServer, ServerProcess, add_operation, free_port
from voxmeter.config import Settings
from voxmeter.contract import errors
from voxmeter.domain.alerts import AlertKind
from voxmeter.domain.models import Operation
from voxmeter.services import Services
from voxmeter.services.deliveries import DeliveryWorker
from voxmeter.storage import open_store
from voxmeter.storage.base import Store

MOMENT = "2026-11-20T12:00:00Z"


def services_over(store: Store, database_url: str, clock: FakeClock) -> Services:
    return Services.over(store, Settings(database_url=database_url), clock)


def event(event_id: str, quantity: int | str, meter: str = "ivr_calls") -> dict[str, object]:
    return {"id": event_id, "meter": meter, "quantity": quantity, "time": MOMENT}


async def month_total(store: Store, operation: Operation, meter: str = "ivr_calls") -> int:
    return await store.summed_total(operation.id, meter, date(2026, 11, 1), date(2026, 11, 30))


def record_from_threads(database_url: str, clock: FakeClock, batches: list[list[object]]) -> int:
    """Each batch recorded at once by its own thread and store; how many were accepted."""
    accepted: list[int] = []
    refusals: list[str] = []
    start = threading.Barrier(len(batches))

    def worker(batch: list[object]) -> None:
        async def run() -> None:
            store = await open_store(database_url)
            try:
                services = services_over(store, database_url, clock)
                operation = await services.operations.get("Acme BPO")
                start.wait()
                try:
                    await services.usage.record(operation, batch)
                    accepted.append(1)
                except errors.ApiError as exc:
                    refusals.append(exc.msg)
            finally:
                await store.close()

        asyncio.run(run())

    threads = [threading.Thread(target=worker, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    cap_refusal = errors.CAP_EXCEEDED.format(meter="ivr_calls", cap="10")
    assert set(refusals) <= {cap_refusal}
    return len(accepted)


# -- hard caps -----------------------------------------------------------------


async def test_a_batch_that_would_pass_the_cap_is_refused_whole(
    store: Store, database_url: str, clock: FakeClock
) -> None:
    operation = await add_operation(store, clock)
    services = services_over(store, database_url, clock)
    await services.alerts.set_cap("Acme BPO", "ivr_calls", "10")
    await services.usage.record(operation, [event("a", 6)])
    with pytest.raises(errors.ApiError) as refused:
        await services.usage.record(
            operation,
            [event("b", 2), event("m", 9, "ivr_minutes"), event("c", 3)],
        )
    assert refused.value.status == 403
    assert refused.value.msg == errors.CAP_EXCEEDED.format(meter="ivr_calls", cap="10")
    assert [d["id"] for d in refused.value.data] == ["b", "c"]
    assert "past its cap of 10" in refused.value.data[0]["reason"]
    assert await month_total(store, operation) == 6
    assert await month_total(store, operation, "ivr_minutes") == 0
    assert [e.event_id for e in await store.recent_events(operation.id, 10)] == ["a"]
    # Reaching the cap exactly is allowed; clearing it lifts the limit.
    await services.usage.record(operation, [event("d", 4)])
    await services.alerts.clear_cap("Acme BPO", "ivr_calls")
    await services.usage.record(operation, [event("e", 5)])
    assert await month_total(store, operation) == 15


async def test_caps_are_checked_per_operation_and_refuse_bad_input(
    store: Store, database_url: str, clock: FakeClock
) -> None:
    await add_operation(store, clock)
    other = await add_operation(store, clock, name="Other")
    services = services_over(store, database_url, clock)
    await services.alerts.set_cap("Acme BPO", "ivr_calls", "1")
    await services.usage.record(other, [event("x", 5)])
    with pytest.raises(errors.ApiError) as gauge:
        await services.alerts.set_cap("Acme BPO", "agent_script", "3")
    assert gauge.value.msg == errors.METER_NOT_SUMMED.format(meter="agent_script")
    with pytest.raises(errors.ApiError) as negative:
        await services.alerts.set_cap("Acme BPO", "ivr_calls", "-1")
    assert negative.value.status == 400
    with pytest.raises(errors.ApiError) as unknown:
        await services.alerts.clear_cap("Other", "ivr_calls")
    assert unknown.value.status == 404
    assert [(name, c.quantity) for name, c in await services.alerts.caps()] == [("Acme BPO", 1)]


def test_concurrent_batches_cannot_both_pass_a_cap(database_url: str, clock: FakeClock) -> None:
    async def prepare() -> None:
        store = await open_store(database_url)
        try:
            await add_operation(store, clock)
            await services_over(store, database_url, clock).alerts.set_cap(
                "Acme BPO", "ivr_calls", "10"
            )
        finally:
            await store.close()

    asyncio.run(prepare())
    batches: list[list[object]] = [[event(f"t{i}", 6)] for i in range(4)]
    assert record_from_threads(database_url, clock, batches) == 1

    async def total() -> int:
        store = await open_store(database_url)
        try:
            operation = await store.get_operation("Acme BPO")
            assert operation is not None
            return await month_total(store, operation)
        finally:
            await store.close()

    assert asyncio.run(total()) == 6


# -- alert rules -------------------------------------------------------------------


async def test_each_level_is_recorded_once_when_crossed(
    store: Store, database_url: str, clock: FakeClock
) -> None:
    operation = await add_operation(store, clock)
    services = services_over(store, database_url, clock)
    await services.alerts.add_rule("Acme BPO", "ivr_calls", ["5,10"])
    await services.alerts.add_endpoint("http://127.0.0.1:9/hook")
    for i, quantity in enumerate([3, 3, 1, 4, 2, 7]):
        await services.usage.record(operation, [event(f"e{i}", quantity)])
    events = list(reversed(await services.alerts.events()))
    assert [(e.kind, e.level, e.quantity) for e in events] == [
        (AlertKind.CROSSED, "5", 6),
        (AlertKind.CROSSED, "10", 11),
    ]
    assert events[0].operation == "Acme BPO" and events[0].period == "2026-11"
    deliveries = await services.alerts.deliveries()
    assert sorted(d.event.id for d in deliveries) == sorted(e.id for e in events)
    assert {d.status for d in deliveries} == {"pending"}


async def test_rules_for_every_operation_and_percentages_of_the_cap(
    store: Store, database_url: str, clock: FakeClock
) -> None:
    acme = await add_operation(store, clock)
    other = await add_operation(store, clock, name="Other")
    services = services_over(store, database_url, clock)
    await services.alerts.add_rule(None, "ivr_minutes", ["1.5"])
    await services.alerts.set_cap("Acme BPO", "ivr_calls", "10")
    await services.alerts.add_rule("Acme BPO", "ivr_calls", ["80%", "100%"])
    await services.usage.record(acme, [event("a", "2", "ivr_minutes"), event("b", 8)])
    await services.usage.record(other, [event("a", "1.5", "ivr_minutes"), event("b", 8)])
    await services.usage.record(acme, [event("c", 2)])
    crossed = {(e.operation, e.meter, e.level) for e in await services.alerts.events()}
    assert crossed == {
        ("Acme BPO", "ivr_minutes", "1500"),
        ("Other", "ivr_minutes", "1500"),
        ("Acme BPO", "ivr_calls", "80%"),
        ("Acme BPO", "ivr_calls", "100%"),
    }
    with pytest.raises(errors.ApiError) as bad:
        await services.alerts.add_rule("Acme BPO", "ivr_calls", ["80%", "lots"])
    assert bad.value.msg == errors.RULE_LEVELS_INVALID


def test_concurrent_batches_crossing_a_level_record_it_once(
    database_url: str, clock: FakeClock
) -> None:
    async def prepare() -> None:
        store = await open_store(database_url)
        try:
            await add_operation(store, clock)
            await services_over(store, database_url, clock).alerts.add_rule(
                "Acme BPO", "ivr_calls", ["5"]
            )
        finally:
            await store.close()

    asyncio.run(prepare())
    batches: list[list[object]] = [[event(f"t{i}", 3)] for i in range(6)]
    assert record_from_threads(database_url, clock, batches) == 6

    async def alerts() -> list[str]:
        store = await open_store(database_url)
        try:
            events = await services_over(store, database_url, clock).alerts.events()
            return [f"{e.kind}:{e.level}" for e in events]
        finally:
            await store.close()

    assert asyncio.run(alerts()) == ["crossed:5"]


async def test_a_correction_below_a_level_rearms_it(
    store: Store, database_url: str, clock: FakeClock
) -> None:
    operation = await add_operation(store, clock)
    services = services_over(store, database_url, clock)
    await services.alerts.add_rule("Acme BPO", "ivr_calls", ["5"])
    await services.usage.record(operation, [event("a", 3), event("b", 3)])
    await services.usage.correct(operation, [{"id": "b", "action": "void"}])
    await services.usage.record(operation, [event("c", 1)])  # 4: below, nothing
    await services.usage.record(operation, [event("d", 2)])  # 6: crossed again
    await services.usage.correct(operation, [{"id": "a", "action": "amend", "quantity": 4}])
    kinds = [(e.kind.value, e.quantity) for e in reversed(await services.alerts.events())]
    assert kinds == [("crossed", 6), ("rearmed", 3), ("crossed", 6)]
    assert await month_total(store, operation) == 7


async def test_an_event_of_a_past_month_counts_against_its_own_month(
    store: Store, database_url: str, clock: FakeClock
) -> None:
    clock.now = datetime.fromisoformat("2026-12-01T15:00:00+00:00")
    operation = await add_operation(store, clock)
    services = services_over(store, database_url, clock)
    await services.alerts.set_cap("Acme BPO", "ivr_calls", "5")
    november = {"id": "nov", "meter": "ivr_calls", "quantity": 5, "time": "2026-11-30T20:00:00Z"}
    await services.usage.record(operation, [november])
    await services.usage.record(operation, [event("dec", 5) | {"time": "2026-12-01T14:00:00Z"}])
    with pytest.raises(errors.ApiError):
        await services.usage.record(operation, [november | {"id": "nov-2", "quantity": 1}])


# -- webhook delivery ---------------------------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1 that verifies every signature with ``standardwebhooks``."""

    def __init__(self, secret: str, port: int = 0) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.hold: threading.Event | None = None  # when given, answers wait until it is set
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = self.rfile.read(int(self.headers["content-length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                message = Webhook(receiver.secret).verify(payload, headers)
                receiver.received.append({"id": headers["webhook-id"], **message})
                if receiver.hold is not None:
                    receiver.hold.wait(timeout=60)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def quick_retries() -> Settings:
    return Settings(
        webhook_backoff_seconds=0.05, webhook_backoff_max_seconds=0.2, webhook_attempts=50
    )


async def deliver_until(
    worker: DeliveryWorker, done: Callable[[], bool], seconds: float = 20
) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=2) as client:
        while not done():
            assert time.monotonic() < deadline, "not delivered in time"
            if not await worker.deliver_due(client):
                await asyncio.sleep(0.02)


async def test_a_crossing_is_delivered_once_and_signed(
    store: Store, database_url: str, clock: FakeClock, quick_retries: Settings
) -> None:
    operation = await add_operation(store, clock)
    services = services_over(store, database_url, clock)
    port = free_port()
    endpoint = await services.alerts.add_endpoint(f"http://127.0.0.1:{port}/hook")
    receiver = Receiver(endpoint.secrets[0], port)
    try:
        await services.alerts.add_rule("Acme BPO", "ivr_calls", ["5"])
        await services.usage.record(operation, [event("a", 3), event("b", 3)])
        await services.usage.record(operation, [event("c", 3)])
        worker = DeliveryWorker(store, quick_retries)
        await deliver_until(worker, lambda: bool(receiver.received))
        async with httpx.AsyncClient() as client:
            assert await worker.deliver_due(client) == 0
        (message,) = receiver.received
        assert message["type"] == "usage.threshold.crossed"
        assert message["data"] | {"alert": "", "rule": 0} == {
            "alert": "", "rule": 0, "operation": "Acme BPO", "meter": "ivr_calls",
            "period": "2026-11", "level": "5", "threshold": "5", "quantity": "6",
        }  # fmt: skip
        (delivery,) = await services.alerts.deliveries()
        assert (delivery.status, delivery.attempts) == ("delivered", 1)
        assert message["id"] == delivery.event.id
    finally:
        receiver.close()


async def test_a_receiver_down_then_up_gets_the_alert_after_retries(
    store: Store, database_url: str, clock: FakeClock, quick_retries: Settings
) -> None:
    operation = await add_operation(store, clock)
    services = services_over(store, database_url, clock)
    port = free_port()
    endpoint = await services.alerts.add_endpoint(f"http://127.0.0.1:{port}/hook")
    await services.alerts.add_rule("Acme BPO", "ivr_calls", ["5"])
    await services.usage.record(operation, [event("a", 6)])
    worker = DeliveryWorker(store, quick_retries)
    async with httpx.AsyncClient(timeout=2) as client:
        deadline = time.monotonic() + 20
        while (await services.alerts.deliveries())[0].attempts < 3:
            assert time.monotonic() < deadline
            if not await worker.deliver_due(client):
                await asyncio.sleep(0.02)
    (failing,) = await services.alerts.deliveries()
    assert failing.status == "pending" and "ConnectError" in (failing.last_error or "")
    receiver = Receiver(endpoint.secrets[0], port)
    try:
        await deliver_until(worker, lambda: bool(receiver.received))
        assert len(receiver.received) == 1
        (delivered,) = await services.alerts.deliveries()
        assert delivered.status == "delivered" and delivered.attempts >= 4
    finally:
        receiver.close()


async def test_deliveries_fail_after_the_attempts_and_can_be_replayed(
    store: Store, database_url: str, clock: FakeClock
) -> None:
    operation = await add_operation(store, clock)
    services = services_over(store, database_url, clock)
    port = free_port()
    endpoint = await services.alerts.add_endpoint(f"http://127.0.0.1:{port}/hook")
    await services.alerts.add_rule("Acme BPO", "ivr_calls", ["5"])
    await services.usage.record(operation, [event("a", 6)])
    settings = Settings(webhook_backoff_seconds=0.01, webhook_attempts=2)
    worker = DeliveryWorker(store, settings)

    async def status() -> str:
        return (await services.alerts.deliveries())[0].status

    async with httpx.AsyncClient(timeout=2) as client:
        deadline = time.monotonic() + 20
        while await status() == "pending":
            assert time.monotonic() < deadline
            await worker.deliver_due(client)
            await asyncio.sleep(0.02)
    assert await status() == "failed"
    new_secret = await services.alerts.rotate_endpoint(endpoint.id)
    receiver = Receiver(endpoint.secrets[0], port)  # the previous secret still verifies
    try:
        (failed,) = await services.alerts.deliveries()
        await services.alerts.replay(failed.id)
        await deliver_until(worker, lambda: bool(receiver.received))
        receiver.secret = new_secret
        await services.alerts.replay(failed.id)
        await deliver_until(worker, lambda: len(receiver.received) == 2)
    finally:
        receiver.close()
    with pytest.raises(errors.ApiError) as unknown:
        await services.alerts.replay(failed.id + 100)
    assert unknown.value.status == 404


async def test_the_server_delivers_from_its_lifespan(
    store: Store, database_url: str, clock: FakeClock, server: RunningServer
) -> None:
    operation = await add_operation(store, clock)
    services = services_over(store, database_url, clock)
    port = free_port()
    endpoint = await services.alerts.add_endpoint(f"http://127.0.0.1:{port}/hook")
    receiver = Receiver(endpoint.secrets[0], port)
    try:
        await services.alerts.add_rule("Acme BPO", "ivr_calls", ["5"])
        await services.usage.record(operation, [event("a", 6)])
        deadline = time.monotonic() + 20
        while not receiver.received:
            assert time.monotonic() < deadline, "the server did not deliver"
            await asyncio.sleep(0.05)
        assert receiver.received[0]["data"]["quantity"] == "6"
    finally:
        receiver.close()


async def test_a_server_killed_while_delivering_delivers_after_restart(
    store: Store,
    database_url: str,
    clock: FakeClock,
    serve_process: Callable[..., ServerProcess],
) -> None:
    operation = await add_operation(store, clock)
    services = services_over(store, database_url, clock)
    port = free_port()
    endpoint = await services.alerts.add_endpoint(f"http://127.0.0.1:{port}/hook")
    receiver = Receiver(endpoint.secrets[0], port)
    receiver.hold = threading.Event()  # answers nothing until set
    settings = {"webhook_lease_seconds": 2, "webhook_poll_seconds": 0.1}
    try:
        await services.alerts.add_rule("Acme BPO", "ivr_calls", ["5"])
        await services.usage.record(operation, [event("a", 6)])
        first = serve_process(workers=1, **settings)
        await wait_for(lambda: bool(receiver.received), "the first attempt")
        first.process.send_signal(signal.SIGKILL)  # mid-delivery: the lease is held
        first.process.wait(timeout=10)
        (held,) = await services.alerts.deliveries()
        assert (held.status, held.attempts) == ("pending", 0)
        receiver.hold.set()
        serve_process(workers=1, **settings)

        async def delivered() -> bool:
            return (await services.alerts.deliveries())[0].status == "delivered"

        deadline = time.monotonic() + 30
        while not await delivered():
            assert time.monotonic() < deadline, "not delivered after the restart"
            await asyncio.sleep(0.1)
        assert {m["id"] for m in receiver.received} == {held.event.id}
    finally:
        receiver.hold.set()
        receiver.close()


async def wait_for(done: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what} did not happen"
        await asyncio.sleep(0.05)
