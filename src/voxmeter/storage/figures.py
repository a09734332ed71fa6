"""Report figures a worker has read, and how long they stay current.

A figure (a sum over days, a gauge's value) changes only when its
operation's ledger does. Each store learns a version of the ledger at every
admission, inside the admission's own transaction; a figure read after an
admission is kept under the version that admission saw, and served to later
calls as long as their admissions keep reporting that version. So a cached
figure is always as current as the admission of the call it answers. Reads
that no admission preceded (limits off, tools) find no version: they are
read from the database and not kept.

:class:`CachedFigures` puts any :class:`~voxmeter.storage.ports.RollupReader`
behind the cache; a backend's admission tells the cache what it saw
(:meth:`FigureCache.seen`) and its ledger writes make it forget
(:meth:`FigureCache.clear`).
"""

from __future__ import annotations

from datetime import date

from voxmeter.storage.ports import RollupReader

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

    def lookup(self, key: FigureKey) -> tuple[int | None, tuple[int | None] | None]:
        """The ledger version current for the key's operation, and the figure kept, if current.

        Returns the figure as a one-item tuple so that a kept None (a gauge
        never set) differs from nothing kept.
        """
        version = self._versions.get(key[1])
        cached = self._figures.get(key)
        if cached is not None and cached[0] == version:
            return version, (cached[1],)
        return version, None

    def keep(self, key: FigureKey, version: int | None, value: int | None) -> None:
        """Keep a figure read under ``version`` (not kept without one)."""
        if version is not None:
            if len(self._figures) >= self.capacity:
                self._figures.clear()
            self._figures[key] = (version, value)


class CachedFigures(RollupReader):
    """A rollup reader whose report figures go through :attr:`figures`.

    Put it before the backend's own reader among a store's bases: its
    ``summed_total`` and ``gauge_value`` answer from the cache and ask the
    reader behind them (``super()``) only for a figure not kept. (mypy cannot
    know a concrete reader follows in the store's bases, hence its ignores.)
    """

    figures: FigureCache

    async def summed_total(
        self, operation_id: int, meter: str, first_day: date, last_day: date
    ) -> int:
        key = ("sum", operation_id, meter, first_day, last_day)
        version, kept = self.figures.lookup(key)
        if kept is not None:
            return kept[0] or 0
        total = await super().summed_total(operation_id, meter, first_day, last_day)  # type: ignore[safe-super]
        self.figures.keep(key, version, total)
        return total

    async def gauge_value(self, operation_id: int, meter: str, day: date) -> int | None:
        key = ("gauge", operation_id, meter, day, day)
        version, kept = self.figures.lookup(key)
        if kept is not None:
            return kept[0]
        value = await super().gauge_value(operation_id, meter, day)  # type: ignore[safe-super]
        self.figures.keep(key, version, value)
        return value
