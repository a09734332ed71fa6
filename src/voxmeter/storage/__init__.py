"""Where voxmeter keeps its records: two backends behind one set of ports.

:mod:`.ports` names what a store does, one port per concern, and
:class:`~voxmeter.storage.ports.Store` their union; :mod:`.sqlite` and
:mod:`.postgres` implement them, one module per port. Shared by both:
column lists and row mapping (:mod:`.rows`), batched admission
(:mod:`.admitting`, :mod:`.batching`), the figure cache (:mod:`.figures`)
and the schema migrations (:mod:`.schema`, ``migrations/``).
"""

from __future__ import annotations

from voxmeter.storage.ports import Store


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
