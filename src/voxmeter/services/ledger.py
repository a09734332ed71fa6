"""Proof that the rollups the reports read agree with the raw ledger."""

from __future__ import annotations

from voxmeter.domain.ledger import discrepancies
from voxmeter.domain.models import Discrepancy, Operation
from voxmeter.storage.base import Store


class LedgerService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def verify(self, operation: Operation) -> list[Discrepancy]:
        """Every daily total of the operation recomputed from its events, where it differs."""
        return discrepancies(
            await self._store.ledger_by_day(operation.id),
            await self._store.rollups_by_day(operation.id),
        )
