"""What the probes and metrics read of the database."""

from __future__ import annotations

from voxmeter.storage.base import Store


class HealthService:
    def __init__(self, store: Store, schema_head: str, min_free_disk_bytes: int) -> None:
        self._store = store
        self.schema_head = schema_head
        self.min_free_disk_bytes = min_free_disk_bytes

    async def schema_current(self) -> bool:
        """The database answers and its schema is the one this version needs."""
        return await self._store.schema_revision() == self.schema_head

    async def ledger_size(self) -> int:
        return await self._store.ledger_size()

    def free_disk_bytes(self) -> int | None:
        """Free space beside a local database file (SQLite); None when the database is remote."""
        return self._store.free_disk_bytes()

    def room_to_write(self) -> bool:
        """Whether uploads may be stored: free space above the reserve kept for call counting."""
        free = self._store.free_disk_bytes()
        return free is None or free >= self.min_free_disk_bytes
