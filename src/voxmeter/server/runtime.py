"""What every request handler needs: the store, the settings, the clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from voxmeter.config import Settings
from voxmeter.metering.clock import Clock
from voxmeter.server.credentials import CredentialCache
from voxmeter.storage.base import Store


@dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    store: Store
    schema_head: str  # the migration revision this version of voxmeter needs
    credentials: CredentialCache = field(default_factory=CredentialCache)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
