"""The names services and tools import from here, now defined in :mod:`voxmeter.storage.ports`."""

from __future__ import annotations

from voxmeter.storage.ports import (
    AdmissionRequest,
    OperationExists,
    SchemaNotCurrent,
    StorageError,
    Store,
    UnknownOperation,
)

__all__ = [
    "AdmissionRequest",
    "OperationExists",
    "SchemaNotCurrent",
    "StorageError",
    "Store",
    "UnknownOperation",
]
