"""Building ledger events directly, bypassing the ingestion rules on purpose."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from voxmeter.contract.meters import billing_meter
from voxmeter.contract.quantities import to_scaled
from voxmeter.domain.models import LedgerEvent, Operation
from voxmeter.domain.usage import fingerprint
from voxmeter.storage.base import Store


def ledger_event(
    operation: Operation,
    meter: str,
    quantity: int | str | Decimal,
    when: str | datetime,
    event_id: str,
    attributes: str | None = None,
) -> LedgerEvent:
    found = billing_meter(meter)
    assert found is not None, meter
    moment = datetime.fromisoformat(when) if isinstance(when, str) else when
    scaled = to_scaled(quantity, found.kind.scale)
    return LedgerEvent(
        event_id=event_id,
        meter=meter,
        quantity=scaled,
        occurred_at=moment,
        day=operation.local_date(moment),
        attributes=attributes,
        fingerprint=fingerprint(meter, scaled, moment, attributes),
    )


async def record(
    store: Store, operation: Operation, now: datetime, *events: tuple[Any, ...]
) -> None:
    """Record (meter, quantity, when[, id]) tuples; ids default to their position."""
    batch = [
        ledger_event(operation, e[0], e[1], e[2], e[3] if len(e) > 3 else f"ev-{i}")
        for i, e in enumerate(events)
    ]
    outcome = await store.record_events(operation.id, batch, now)
    assert not outcome.conflicts
