"""voxmeter: a self-hostable usage-metering service speaking the wolkvox API v2.

``voxmeter.Client`` and ``voxmeter.AsyncClient`` are imported on first use,
so the server does not pay for the client's imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from voxmeter.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        import voxmeter.client

        return getattr(voxmeter.client, name)
    raise AttributeError(name)
