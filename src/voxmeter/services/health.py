"""What the probes and metrics read of the database."""

from __future__ import annotations

from voxmeter.storage.base import Store


class HealthService:
    def __init__(self, store: Store, schema_head: str) -> None:
        self._store = store
        self.schema_head = schema_head

    async def schema_current(self) -> bool:
        """The database answers and its schema is the one this version needs."""
        return await self._store.schema_revision() == self.schema_head

    async def ledger_size(self) -> int:
        return await self._store.ledger_size()
