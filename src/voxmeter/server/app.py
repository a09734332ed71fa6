"""The ASGI application: routes, error envelopes, store lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxmeter.config import Settings
from voxmeter.contract import errors
from voxmeter.domain.clock import Clock, system_clock
from voxmeter.server import responses, routes
from voxmeter.server.cors import Cors
from voxmeter.server.observability import Observability
from voxmeter.server.runtime import Runtime
from voxmeter.services import Services
from voxmeter.services.console import ConsoleServices
from voxmeter.services.deliveries import DeliveryWorker
from voxmeter.storage import open_store, schema
from voxmeter.storage.admin import open_admin_store
from voxmeter.storage.ports import DatabaseTimeouts


async def _refusal(request: Request, exc: Exception) -> Response:
    return responses.failure(responses.refusal(exc, request.method, request.url.path))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "GET")
        return responses.failure(errors.method_not_allowed(allowed))
    if exc.status_code == 404:
        return responses.failure(errors.not_found())
    return responses.failure(errors.ApiError(exc.status_code, str(exc.detail).upper()))


class UnexpectedErrors:
    """An unexpected exception answered 500 in the envelope, the connection kept.

    Starlette's outermost ServerErrorMiddleware would answer too, but then
    re-raise, and uvicorn closes a connection whose application raised.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, noting_start)
        except Exception as exc:
            if started:
                raise
            error = responses.refusal(exc, scope["method"], scope["path"])
            await responses.send_failure(send, error)


class VoxmeterApp(Starlette):
    """Starlette, except that the report calls skip its router and middleware stack.

    They are the hot path and plain ASGI endpoints already (see
    :mod:`voxmeter.server.reports`); routing them here saves about a tenth
    of their cost. Every other request, and every other method on these
    paths (405), goes through Starlette as usual.
    """

    def __init__(
        self, *args: Any, access_logs: bool, cors_origins: frozenset[str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.add_middleware(UnexpectedErrors)
        # Only when origins are listed: otherwise CORS costs no call anything.
        if cors_origins:
            self.add_middleware(Cors, origins=cors_origins)
        self.add_middleware(Observability, known_paths=routes.PATHS, access_logs=access_logs)
        self.direct_paths: dict[str, ASGIApp] = {
            route.path: Observability(
                Cors(route.handler, cors_origins) if cors_origins else route.handler,
                routes.PATHS,
                access_logs,
            )
            for route in routes.ROUTES
            if route.direct
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.direct_paths.get(scope["path"])
            if endpoint is None:
                canonical = _canonical(scope["path"])
                if canonical != scope["path"]:
                    # Served as the canonical path, never redirected: a
                    # redirect behind a TLS proxy would point at http://.
                    scope["path"] = canonical
                    scope["raw_path"] = canonical.encode()
                    endpoint = self.direct_paths.get(canonical)
            if endpoint is not None and scope["method"] in _DIRECT_METHODS:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _canonical(path: str) -> str:
    """``path`` without doubled or trailing slashes (``/`` stays ``/``)."""
    if "//" not in path and not (path.endswith("/") and len(path) > 1):
        return path
    return "/" + "/".join(part for part in path.split("/") if part)


_DIRECT_METHODS = frozenset({"GET", "HEAD"})


def create_app(settings: Settings | None = None, clock: Clock = system_clock) -> Starlette:
    """The voxmeter application; it opens its store when the server starts it."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Every worker refuses to serve a schema it was not written for.
        schema.ensure_current(settings.database_url)
        timeouts = DatabaseTimeouts(
            connect_seconds=settings.database_connect_timeout_seconds,
            wait_seconds=settings.database_wait_seconds,
            statement_seconds=settings.database_statement_timeout_seconds,
        )
        store = await open_store(settings.database_url, settings.pool_size, timeouts)
        services = Services.over(store, settings, clock)
        app.state.runtime = Runtime(settings=settings, clock=clock, services=services)
        admin_store = await open_admin_store(settings.database_url)
        app.state.console = ConsoleServices.over(services, admin_store, settings, clock)
        # Alerts recorded in the outbox, sent as signed webhooks (docs/alerts.md).
        deliveries = asyncio.create_task(DeliveryWorker(store, settings).run())
        try:
            yield
        finally:
            deliveries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliveries
            await admin_store.close()
            await store.close()

    return VoxmeterApp(
        routes=[
            Route(route.path, route.handler, methods=[route.method]) for route in routes.ROUTES
        ],
        exception_handlers={
            errors.ApiError: _refusal,
            HTTPException: _http_error,
        },
        lifespan=lifespan,
        access_logs=settings.access_logs,
        cors_origins=settings.allowed_origins,
    )


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory``: each worker process builds its own app."""
    return create_app(Settings.from_env())
