"""Random histories of batches, retries, conflicts, voids and amends against a model.

After every step the store's figures must equal the model's, and the
rollups must agree with a recomputation from the raw ledger.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FakeClock, add_operation
from ledger_helpers import ledger_event
from voxmeter.contract.meters import GAUGE_METERS
from voxmeter.domain.ledger import discrepancies
from voxmeter.domain.models import Action, Correction, CorrectionResult, Operation
from voxmeter.storage import open_store
from voxmeter.storage.base import Store

METERS = ("ivr_calls", "stereo_rec", "chat_licenses")
# Figures in the store's units: stereo_rec counts thousandths of a minute.
SCALE = {"ivr_calls": 1, "stereo_rec": 1000, "chat_licenses": 1}
MONTH_START, MONTH_END = date(2026, 11, 1), date(2026, 11, 30)
names = itertools.count()

event_ids = st.sampled_from([f"e{i}" for i in range(12)])
payloads = st.tuples(
    st.sampled_from(METERS), st.integers(0, 50), st.integers(1, 20), st.integers(0, 23)
)
batch = st.lists(st.tuples(event_ids, payloads), min_size=1, max_size=6).map(
    lambda events: ("batch", events)
)
void = event_ids.map(lambda event_id: ("void", event_id))
amend = st.tuples(event_ids, st.integers(0, 50)).map(lambda a: ("amend", *a))
steps = st.lists(st.one_of(batch, batch, void, amend), min_size=1, max_size=12)


@dataclass
class Model:
    """The ledger as a plain dictionary: what the store must report."""

    payloads: dict[str, tuple[str, int, int, int]] = field(default_factory=dict)
    counted: dict[str, int | None] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def batch(self, events: list[tuple[str, tuple[str, int, int, int]]]) -> bool:
        seen = dict(self.payloads)
        for event_id, payload in events:
            if seen.setdefault(event_id, payload) != payload:
                return False  # a conflict: nothing of the batch is stored
        for event_id, payload in events:
            if event_id not in self.payloads:
                self.payloads[event_id] = payload
                self.counted[event_id] = payload[1] * SCALE[payload[0]]
                self.order.append(event_id)
        return True

    def figure(self, meter: str) -> int:
        mine = [
            e for e in self.order if self.payloads[e][0] == meter and self.counted[e] is not None
        ]
        if meter not in GAUGE_METERS:
            return sum(self.counted[e] or 0 for e in mine)
        if not mine:
            return 0
        latest = max(
            mine, key=lambda e: (self.payloads[e][2], self.payloads[e][3], self.order.index(e))
        )
        return self.counted[latest] or 0


def moment(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def to_event(operation: Operation, event_id: str, payload: tuple[str, int, int, int]):
    meter, quantity, day, hour = payload
    return ledger_event(operation, meter, quantity, moment(day, hour), event_id)


async def check(store: Store, operation: Operation, model: Model) -> None:
    for meter in METERS:
        if meter in GAUGE_METERS:
            held = await store.gauge_value(operation.id, meter, MONTH_END) or 0
        else:
            held = await store.summed_total(operation.id, meter, MONTH_START, MONTH_END)
        assert held == model.figure(meter), meter
    ledger = await store.ledger_by_day(operation.id)
    assert discrepancies(ledger, await store.rollups_by_day(operation.id)) == []


async def replay(database_url: str, history: list[tuple]) -> None:
    store = await open_store(database_url)
    try:
        clock = FakeClock()
        operation = await add_operation(store, clock, name=f"op-{next(names)}", timezone="UTC")
        model = Model()
        for step in history:
            if step[0] == "batch":
                events = [to_event(operation, event_id, payload) for event_id, payload in step[1]]
                outcome = await store.record_events(operation.id, events, clock())
                assert (not outcome.conflicts) == model.batch(step[1])
            else:
                event_id = step[1]
                quantity = step[2] if step[0] == "amend" else None
                action = Action.AMEND if step[0] == "amend" else Action.VOID
                (result,) = await store.correct_events(
                    operation.id, [Correction(event_id, action, quantity)], clock()
                )
                if event_id not in model.payloads:
                    assert result is CorrectionResult.UNKNOWN
                else:
                    changed = model.counted[event_id] != quantity
                    assert (result is CorrectionResult.APPLIED) == changed
                    model.counted[event_id] = quantity
            await check(store, operation, model)
    finally:
        await store.close()


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(history=steps)
def test_reported_figures_equal_the_model(database_url: str, history: list[tuple]) -> None:
    asyncio.run(replay(database_url, history))
