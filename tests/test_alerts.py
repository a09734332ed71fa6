"""Hard caps and alert rules, on both stores, through the services every entry point calls."""

from __future__ import annotations

import asyncio
import threading
from datetime import date, datetime

import pytest

from conftest import FakeClock, add_operation
from voxmeter.config import Settings
from voxmeter.contract import errors
from voxmeter.domain.alerts import AlertKind
from voxmeter.domain.models import Operation
from voxmeter.services import Services
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
