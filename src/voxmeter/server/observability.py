"""Metrics, health, request ids and structured access logs.

The middleware is plain ASGI and does little per request (a clock read, two
metric updates, one log line when access logs are on), so the report path
keeps its speed. Metrics aggregate across ``voxmeter serve --workers N``
through prometheus-client's multiprocess mode, set up by ``voxmeter serve``.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxmeter.contract import errors
from voxmeter.server.responses import failure, header
from voxmeter.server.runtime import runtime_of

access_log = logging.getLogger("voxmeter.access")

REQUESTS = Counter(
    "voxmeter_requests_total", "HTTP requests answered", ["endpoint", "api", "status"]
)
LATENCY = Histogram(
    "voxmeter_request_duration_seconds",
    "Time to answer a request",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
REQUEST_ID_HEADER = b"x-request-id"


API_SCOPE_KEY = "voxmeter.api"
"""Where an endpoint leaves the (validated) ``api`` it served, for the labels."""


def _labels(scope: Scope, known_paths: frozenset[str]) -> tuple[str, str]:
    """Bounded label values: unknown paths and apis are not allowed to grow the series."""
    path = scope["path"] if scope["path"] in known_paths else "other"
    api = "-"
    if path.endswith(".php"):
        api = scope.get(API_SCOPE_KEY) or "other"
    return path, api


class _RequestIds:
    """Unique ids without a system call per request: a random prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = uuid.uuid4().hex[:16]
        self._next = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._next):016x}"


_new_request_id = _RequestIds()
# Metric children by label values (bounded, see _labels): looking one up
# through .labels() costs more than updating it.
_counters: dict[tuple[str, str, int], Any] = {}
_timers: dict[str, Any] = {}


def _count(path: str, api: str, status: int, elapsed: float) -> None:
    key = (path, api, status)
    counter = _counters.get(key)
    if counter is None:
        counter = _counters[key] = REQUESTS.labels(path, api, str(status))
    counter.inc()
    timer = _timers.get(path)
    if timer is None:
        timer = _timers[path] = LATENCY.labels(path)
    timer.observe(elapsed)


class _AccessLines:
    """Access-log lines, handed to logging once per event-loop turn.

    Under load many requests finish in one turn; their lines go out as one
    record (one line each, so the output is still JSON lines). A record per
    request cost about a sixth of a report call.
    """

    def __init__(self) -> None:
        self._pending: list[str] = []

    def add(self, line: str) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        if self._pending:
            lines, self._pending = self._pending, []
            access_log.info("\n".join(lines))


_access_lines = _AccessLines()


class _Response:
    """Sends a response with the request id added, noting its status."""

    __slots__ = ("_request_id", "_send", "status")

    def __init__(self, send: Send, request_id: bytes) -> None:
        self._send = send
        self._request_id = request_id
        self.status = 500  # until a response starts

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            # A new list: the sender's (a Response's own headers) stays as it was.
            message["headers"] = [
                *message.get("headers", ()),
                (REQUEST_ID_HEADER, self._request_id),
            ]
        await self._send(message)


class Observability:
    """Request id in and out, one JSON log line, request metrics."""

    def __init__(self, app: ASGIApp, known_paths: frozenset[str], access_logs: bool) -> None:
        self.app = app
        self.known_paths = known_paths
        self.access_logs = access_logs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = header(scope, REQUEST_ID_HEADER)
        request_id = incoming if incoming and _REQUEST_ID.fullmatch(incoming) else _new_request_id()
        response = _Response(send, request_id.encode())
        try:
            await self.app(scope, receive, response.send)
        finally:
            elapsed = time.perf_counter() - started
            path, api = _labels(scope, self.known_paths)
            status = response.status
            _count(path, api, status, elapsed)
            if self.access_logs and access_log.isEnabledFor(logging.INFO):
                # Never the token, never the body: method, path, api, status, time.
                _access_lines.add(
                    orjson.dumps(
                        {
                            "request_id": request_id,
                            "method": scope["method"],
                            "path": scope["path"],
                            "api": api,
                            "status": status,
                            "ms": round(elapsed * 1000, 3),
                        }
                    ).decode()
                )


def _registry() -> CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def _scraper_allowed(request: Request, token: str) -> bool:
    """No token configured, or ``Authorization: Bearer <token>`` (compared in constant time)."""
    if not token:
        return True
    scheme, _, offered = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        offered.strip().encode(), token.encode()
    )


async def metrics(request: Request) -> Response:
    """Prometheus text format; the ledger size is read at scrape time (one cheap query)."""
    if not _scraper_allowed(request, runtime_of(request).settings.metrics_token):
        return failure(
            errors.ApiError(401, errors.METRICS_TOKEN, headers={"WWW-Authenticate": "Bearer"})
        )
    health = runtime_of(request).services.health
    size = _ReadAtScrape(await health.ledger_size(), health.free_disk_bytes())
    body = generate_latest(_registry()) + generate_latest(size)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


class _ReadAtScrape:
    """The ledger's size and the free disk space read at this scrape, as a collector of its own.

    Not Gauges: under several workers every Gauge is written to the shared
    multiprocess files, and the values would be listed again per worker.
    """

    def __init__(self, size: int, free_disk_bytes: int | None) -> None:
        self.size = size
        self.free_disk_bytes = free_disk_bytes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("voxmeter_ledger_events", "Events in the ledger", value=self.size)
        if self.free_disk_bytes is not None:
            yield GaugeMetricFamily(
                "voxmeter_free_disk_bytes",
                "Free space of the file system holding the SQLite database",
                value=self.free_disk_bytes,
            )


def _probe(ok: bool, detail: str) -> Response:
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable"}
    if not ok:
        body["reason"] = detail
    return Response(orjson.dumps(body), 200 if ok else 503, media_type="application/json")


async def healthz(request: Request) -> Response:
    """The process is up and answering."""
    return _probe(True, "")


async def readyz(request: Request) -> Response:
    """The database answers and its schema is the one this version needs, within the bound."""
    runtime = runtime_of(request)
    try:
        async with asyncio.timeout(runtime.settings.ready_timeout_seconds):
            current = await runtime.services.health.schema_current()
    except Exception as exc:  # any failure means "do not send traffic here"
        logging.getLogger("voxmeter.server").warning("not ready: %s", type(exc).__name__)
        return _probe(False, "database unreachable")
    if current and not runtime.services.health.room_to_write():
        # Still 200: reads are served; a balancer keeps sending them here.
        body = {"status": "degraded", "reason": "disk nearly full: uploads are refused 507"}
        return Response(orjson.dumps(body), 200, media_type="application/json")
    return _probe(current, "schema not current: run voxmeter db upgrade")
