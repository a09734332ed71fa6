"""The PostgreSQL store: several workers, on one machine or many, share it.

One module per port (operations, tokens, admission, ledger, rollups) over
the connection pool of :mod:`.connection`; :mod:`.store` composes them into
:class:`PostgresStore`. Every method is one round trip where it can be
(admission is one call of a server-side function); batches go in as arrays
through ``unnest``. Month partitions of the ledger are created ahead of
use, with a DEFAULT partition behind them so an insert never fails.
"""

from __future__ import annotations

from voxmeter.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
