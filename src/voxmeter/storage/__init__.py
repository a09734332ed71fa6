"""Storage backends behind one interface (:class:`~voxmeter.storage.base.Store`)."""

from __future__ import annotations

from voxmeter.storage.base import Store


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


async def open_store(url: str, pool_size: int = 10) -> Store:
    """Connect to the database at ``url`` (``sqlite:///…`` or ``postgresql://…``)."""
    if is_postgres(url):
        from voxmeter.storage.postgres import PostgresStore

        return await PostgresStore.connect(url, pool_size)
    if url.startswith("sqlite:///"):
        from voxmeter.storage.sqlite import SQLiteStore

        return SQLiteStore(url)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql://…")
