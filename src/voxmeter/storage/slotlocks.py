"""Simultaneous-call slots as POSIX byte-range locks on a file beside the database.

For the embedded store every worker runs on the one machine that holds the
SQLite file, so the kernel can arbitrate slots: a slot is an exclusive lock
on one byte of ``<database>-slots``. Taking and freeing one is a system call
instead of two write transactions, and a worker that dies frees its slots at
once (the kernel drops a dead process's locks), with no lease to wait out.

POSIX locks belong to the process, not to a file descriptor, so one process
must track which slots its own calls hold; the registry below does that for
every store instance of the process that uses the same file.
"""

from __future__ import annotations

import fcntl
import os
import threading

from voxmeter.config import MAX_CONCURRENCY_PER_TOKEN

_SLOTS_PER_TOKEN = MAX_CONCURRENCY_PER_TOKEN  # byte stride between tokens


class SlotLocks:
    """The slots of one lock file, for this process."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._held: set[tuple[str, int]] = set()
        self._mutex = threading.Lock()

    @staticmethod
    def _offset(token_id: str, slot: int) -> int:
        # Token ids are "tok_" + 12 hex digits: a unique 48-bit number.
        return int(token_id[4:], 16) * _SLOTS_PER_TOKEN + slot

    def acquire(self, token_id: str, limit: int) -> int | None:
        """The first free slot below ``limit``, now held; None when all are taken."""
        with self._mutex:
            for slot in range(limit):
                if (token_id, slot) in self._held:
                    continue
                try:
                    fcntl.lockf(
                        self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self._offset(token_id, slot)
                    )
                except OSError:
                    continue  # held by another process
                self._held.add((token_id, slot))
                return slot
        return None

    def release(self, token_id: str, slot: int) -> None:
        with self._mutex:
            if (token_id, slot) in self._held:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self._offset(token_id, slot))
                self._held.discard((token_id, slot))


_REGISTRY: dict[str, SlotLocks] = {}
_REGISTRY_MUTEX = threading.Lock()


def slot_locks(path: str) -> SlotLocks:
    """The process-wide :class:`SlotLocks` of ``path``.

    Never closed: closing any descriptor of the file would drop every lock
    this process holds on it, including those of other store instances.
    """
    key = os.path.realpath(path)
    with _REGISTRY_MUTEX:
        if key not in _REGISTRY:
            _REGISTRY[key] = SlotLocks(key)
        return _REGISTRY[key]
