"""Validation of raw events: the fast paths agree with the exact rules they shortcut."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxmeter.config import Settings
from voxmeter.contract.quantities import QuantityError, to_scaled
from voxmeter.domain.models import Operation
from voxmeter.domain.usage import EventError, Window, validate_batch, validate_event

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
OPERATION = Operation(
    id=1,
    name="Acme BPO",
    server_id="0001",
    timezone="America/Bogota",
    licenses=3,
    pbx=0,
    services=frozenset(),
    created_at=NOW,
)
WINDOW = Window.open_month(
    OPERATION, NOW, grace=Settings().previous_month_grace, skew=Settings().future_skew
)


def raw(quantity: Any, meter: str = "ivr_calls", time: str = "2026-11-20T10:00:00-05:00") -> dict:
    return {"id": "e1", "meter": meter, "quantity": quantity, "time": time}


def reference(quantity: Any, scale: int) -> int | str:
    """The exact rule: ``to_scaled``, and no negatives."""
    try:
        scaled = to_scaled(quantity, scale)
    except QuantityError as exc:
        return str(exc)
    return "negative" if scaled < 0 else scaled


quantities = st.one_of(
    st.integers(-(10**14), 10**14),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
    st.sampled_from(["NaN", "Infinity", "-0", "1e3", "0.0005", "abc", "", None]),
)


@given(quantity=quantities, meter=st.sampled_from(["ivr_calls", "stereo_rec", "chat_licenses"]))
def test_quantities_follow_the_exact_rule_whatever_path_they_take(quantity: Any, meter: str):
    expected = reference(quantity, 3 if meter == "stereo_rec" else 0)
    try:
        got: int | str = validate_event(raw(quantity, meter), OPERATION, WINDOW).quantity
    except EventError as exc:
        got = "negative" if "negative" in str(exc) else str(exc)
    assert got == expected


def test_the_same_instant_written_with_another_offset_is_the_same_event():
    local = validate_event(raw(1, time="2026-11-20T10:00:00-05:00"), OPERATION, WINDOW)
    utc = validate_event(raw(1, time="2026-11-20T15:00:00Z"), OPERATION, WINDOW)
    assert local.fingerprint == utc.fingerprint
    assert local.day == utc.day
    assert validate_event(raw(2), OPERATION, WINDOW).fingerprint != local.fingerprint


def test_events_sharing_a_time_share_its_day_and_a_bad_time_is_refused_each_time():
    near_midnight = "2026-11-21T04:30:00Z"  # 23:30 on the 20th in Bogotá
    batch = [raw(1, time=near_midnight), raw(2, time="tomorrow")] * 2
    events, rejections = validate_batch(batch, OPERATION, WINDOW)
    assert [e.day.isoformat() for e in events] == ["2026-11-20", "2026-11-20"]
    assert events[0].occurred_at == events[1].occurred_at
    assert [r.index for r in rejections] == [1, 3]
    assert {r.reason for r in rejections} == {"time is not a valid ISO 8601 date-time"}


@pytest.mark.parametrize(
    ("quantity", "scaled"),
    [(12, 12_000), ("12.5", 12_500), (Decimal("0.001"), 1), ("1e3", 1_000_000), (12.0, 12_000)],
)
def test_minutes_are_exact_thousandths(quantity: Any, scaled: int):
    assert validate_event(raw(quantity, "stereo_rec"), OPERATION, WINDOW).quantity == scaled
