"""What every request handler needs: the use cases, the settings, the clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from voxmeter.config import Settings
from voxmeter.domain.clock import Clock
from voxmeter.services import Services


@dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    services: Services
    # Uploads being read, by token id: the simultaneous-call limit applied
    # before a body is read (see voxmeter.server.ingest).
    uploads: dict[str, int] = field(default_factory=dict)
    # Body bytes this worker holds for uploads under way.
    upload_bytes: int = 0


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
