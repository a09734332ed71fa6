"""The route table: every path, method and endpoint, in one place.

Routing, the metrics' path labels and the test that holds the OpenAPI
document to the routes all read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp

from voxmeter.contract import wire
from voxmeter.server import ingest, observability, openapi, reports


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    method: str
    handler: Callable[..., Any] | ASGIApp
    # A plain ASGI endpoint dispatched before Starlette's router: the hot path.
    direct: bool = False


ROUTES: tuple[Endpoint, ...] = (
    Endpoint(wire.BILLING_PATH, "GET", reports.billing, direct=True),
    Endpoint(wire.INFORMATION_PATH, "GET", reports.information, direct=True),
    Endpoint(wire.EVENTS_PATH, "POST", ingest.post_events),
    Endpoint(wire.EVENTS_PATH, "GET", ingest.list_events),
    Endpoint(wire.CORRECTIONS_PATH, "POST", ingest.post_corrections),
    Endpoint(wire.METRICS_PATH, "GET", observability.metrics),
    Endpoint(wire.HEALTH_PATH, "GET", observability.healthz),
    Endpoint(wire.READY_PATH, "GET", observability.readyz),
    Endpoint(wire.OPENAPI_PATH, "GET", openapi.openapi_json),
    Endpoint(wire.DOCS_PATH, "GET", openapi.docs),
)

PATHS = frozenset(route.path for route in ROUTES)
