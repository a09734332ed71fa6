"""The ASGI application: routes, error envelopes, store lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from voxmeter.config import Settings
from voxmeter.contract import errors
from voxmeter.metering.clock import Clock, system_clock
from voxmeter.server import ingest, observability, openapi, reports, responses
from voxmeter.server.observability import Observability
from voxmeter.server.runtime import Runtime
from voxmeter.storage import open_store, schema

log = logging.getLogger("voxmeter.server")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ApiError)
    return responses.failure(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "GET")
        return responses.failure(errors.method_not_allowed(allowed))
    if exc.status_code == 404:
        return responses.failure(errors.not_found())
    return responses.failure(errors.ApiError(exc.status_code, str(exc.detail).upper()))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return responses.failure(errors.ApiError(500, errors.INTERNAL_ERROR))


class VoxmeterApp(Starlette):
    """Starlette, except that the report calls skip its router and middleware stack.

    They are the hot path and plain ASGI endpoints already (see
    :mod:`voxmeter.server.reports`); routing them here saves about a tenth
    of their cost. Every other request, and every other method on these
    paths (405), goes through Starlette as usual.
    """

    def __init__(self, *args: Any, access_logs: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_middleware(Observability, access_logs=access_logs)
        self.report_paths: dict[str, ASGIApp] = {
            path: Observability(endpoint, access_logs=access_logs)
            for path, endpoint in reports.ENDPOINTS.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _REPORT_METHODS:
            endpoint = self.report_paths.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


_REPORT_METHODS = frozenset({"GET", "HEAD"})


def create_app(settings: Settings | None = None, clock: Clock = system_clock) -> Starlette:
    """The voxmeter application; it opens its store when the server starts it."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Every worker refuses to serve a schema it was not written for.
        schema.ensure_current(settings.database_url)
        store = await open_store(settings.database_url, settings.pool_size)
        app.state.runtime = Runtime(
            settings=settings, clock=clock, store=store, schema_head=schema.head_revision()
        )
        try:
            yield
        finally:
            await store.close()

    return VoxmeterApp(
        routes=[
            *(Route(path, answer, methods=["GET"]) for path, answer in reports.ENDPOINTS.items()),
            Route("/api/v2/events", ingest.post_events, methods=["POST"]),
            Route("/api/v2/events", ingest.list_events, methods=["GET"]),
            Route("/api/v2/events/corrections", ingest.post_corrections, methods=["POST"]),
            Route("/metrics", observability.metrics, methods=["GET"]),
            Route("/healthz", observability.healthz, methods=["GET"]),
            Route("/readyz", observability.readyz, methods=["GET"]),
            Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
            Route("/docs", openapi.docs, methods=["GET"]),
        ],
        exception_handlers={
            errors.ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        lifespan=lifespan,
        access_logs=settings.access_logs,
    )


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory``: each worker process builds its own app."""
    return create_app(Settings.from_env())
