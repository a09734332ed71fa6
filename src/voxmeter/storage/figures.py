"""Report figures a worker has read, and how long they stay current.

A figure (a sum over days, a gauge's value) changes only when its
operation's ledger does. Each store learns a version of the ledger at every
admission, inside the admission's own transaction; a figure read after an
admission is kept under the version that admission saw, and served to later
calls as long as their admissions keep reporting that version. So a cached
figure is always as current as the admission of the call it answers. Reads
that no admission preceded (limits off, tools) find no version: they are
read from the database and not kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

FigureKey = tuple[str, int, str, date, date]  # (kind, operation id, meter, first, last)

DEFAULT_CAPACITY = 10_000


class FigureCache:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._versions: dict[int, int] = {}
        self._figures: dict[FigureKey, tuple[int, int | None]] = {}

    def seen(self, operation_id: int, version: int) -> None:
        """An admission saw this version of the operation's ledger."""
        # Batches may answer out of order; versions only ever grow.
        if version > self._versions.get(operation_id, -1):
            self._versions[operation_id] = version

    def clear(self) -> None:
        """Forget every figure (this worker changed a ledger itself)."""
        self._figures.clear()

    async def read_through(
        self, key: FigureKey, read: Callable[[], Awaitable[int | None]]
    ) -> int | None:
        """The cached figure if still current, else ``read()``'s, kept for next time."""
        version = self._versions.get(key[1])
        cached = self._figures.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        value = await read()
        if version is not None:
            if len(self._figures) >= self.capacity:
                self._figures.clear()
            self._figures[key] = (version, value)
        return value
