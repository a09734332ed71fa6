"""Where voxmeter keeps its records: two backends behind one set of ports.

:mod:`.ports` names what a store does, one port per concern, and
:class:`~voxmeter.storage.ports.Store` their union; :mod:`.sqlite` and
:mod:`.postgres` implement them, one module per port. Shared by both:
column lists and row mapping (:mod:`.rows`), batched admission
(:mod:`.admitting`, :mod:`.batching`), the figure cache (:mod:`.figures`)
and the schema migrations (:mod:`.schema`, ``migrations/``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from voxmeter.storage.ports import DatabaseTimeouts, Store

PGBOUNCER_FLAG = "pgbouncer"


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def split_pgbouncer_flag(url: str) -> tuple[str, bool]:
    """``url`` without voxmeter's ``pgbouncer=true`` query flag, and whether it was set.

    The flag says the URL leads to PgBouncer in transaction mode; libpq knows
    no such parameter, so it is taken out before the URL reaches the driver.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    flags = [value for name, value in query if name == PGBOUNCER_FLAG]
    if not flags:
        return url, False
    rest = urlencode([(name, value) for name, value in query if name != PGBOUNCER_FLAG])
    return urlunsplit(parts._replace(query=rest)), flags[-1].lower() in ("1", "true", "yes", "on")


async def open_store(
    url: str, pool_size: int = 10, timeouts: DatabaseTimeouts | None = None
) -> Store:
    """Connect to the database at ``url`` (``sqlite:///…`` or ``postgresql://…``)."""
    if is_postgres(url):
        from voxmeter.storage.postgres import PostgresStore

        return await PostgresStore.connect(url, pool_size, timeouts)
    if url.startswith("sqlite:///"):
        from voxmeter.storage.sqlite import SQLiteStore

        return SQLiteStore(url)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql://…")
