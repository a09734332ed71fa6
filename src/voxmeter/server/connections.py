"""Connection-level protection: what uvicorn does not bound by itself.

:class:`GuardedProtocol` is uvicorn's httptools protocol with

* a cap on the size and number of request headers (431, or 414 for the URI),
* a deadline for a request's headers and one for its body (408),
* a cap on open connections per client address and in total: when one is
  reached, an idle connection or the slowest one still sending its headers
  is closed to make room; when none can be, the new one is answered 503.

Refusals are answered in the JSON envelope with ``connection: close``, and
the connection is closed. ``voxmeter serve`` passes the class to uvicorn by
import path, so every worker reads its limits from its own environment.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import weakref
from asyncio import TimerHandle
from typing import Any, ClassVar

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from voxmeter.config import Settings
from voxmeter.contract import envelope, errors

log = logging.getLogger("voxmeter.server")


class Phase(enum.Enum):
    IDLE = "idle"  # no byte of a request yet: a new or a kept-alive connection
    HEAD = "head"  # request line and headers arriving
    BODY = "body"  # headers in, body arriving
    ANSWER = "answer"  # request in, the application answering


# Connections that may be closed to make room, and in which order:
# idle ones first, then those still sending their headers.
_EVICTABLE = {Phase.IDLE: 0, Phase.HEAD: 1}


def refusal_bytes(error: errors.ApiError) -> bytes:
    """A whole HTTP/1.1 answer in the envelope that closes the connection."""
    body = envelope.failure(error)
    head = [
        STATUS_LINE[error.status],
        b"content-type: application/json; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
    ]
    head.extend(b"%s: %s\r\n" % (k.lower().encode(), v.encode()) for k, v in error.headers.items())
    return b"".join(head) + b"\r\n" + body


class _Registry:
    """One server's guarded connections, by client address."""

    def __init__(self) -> None:
        self.all: set[GuardedProtocol] = set()
        self.by_address: dict[str, set[GuardedProtocol]] = {}

    def add(self, connection: GuardedProtocol) -> None:
        self.all.add(connection)
        self.by_address.setdefault(connection.address, set()).add(connection)

    def discard(self, connection: GuardedProtocol) -> None:
        self.all.discard(connection)
        peers = self.by_address.get(connection.address)
        if peers is not None:
            peers.discard(connection)
            if not peers:
                del self.by_address[connection.address]


_registries: weakref.WeakKeyDictionary[ServerState, _Registry] = weakref.WeakKeyDictionary()


def _registry(state: ServerState) -> _Registry:
    registry = _registries.get(state)
    if registry is None:
        registry = _registries[state] = _Registry()
    return registry


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits this module describes."""

    # Read from the environment once per process unless a subclass sets them
    # (see :func:`guarded_protocol`).
    limits: ClassVar[Settings | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        cls = type(self)
        if cls.limits is None:
            cls.limits = Settings.from_env()
        self.settings: Settings = cls.limits
        self.registry = _registry(server_state)
        self.address = ""
        self.phase = Phase.IDLE
        self.phase_since = time.monotonic()
        self._head_bytes = 0
        self._url_bytes = 0
        self._header_count = 0
        self._header_bytes = 0
        self._refused: errors.ApiError | None = None
        self._draining = False
        self._deadline: TimerHandle | None = None

    # -- connection caps ---------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.address = self.client[0] if self.client else ""
        registry = self.registry
        registry.add(self)
        settings = self.settings
        peers = registry.by_address[self.address]
        if len(peers) > settings.max_connections_per_address and not self._evict_one_of(peers):
            self._refuse_connection()
            return
        if len(registry.all) > settings.max_connections and not self._evict_one_of(registry.all):
            self._refuse_connection()
            return
        self._arm(settings.header_timeout_seconds, self._headers_timed_out)

    def _evict_one_of(self, connections: set[GuardedProtocol]) -> bool:
        """Close the idle or slow connection that has waited longest; False if none is."""
        victim = min(
            (c for c in connections if c.phase in _EVICTABLE and c is not self),
            key=lambda c: (_EVICTABLE[c.phase], c.phase_since),
            default=None,
        )
        if victim is None:
            return False
        if victim.phase is Phase.HEAD:
            victim._close_with(errors.ApiError(503, errors.TOO_MANY_CONNECTIONS, headers=_RETRY))
        else:
            victim._close_with(None)
        return True

    def _refuse_connection(self) -> None:
        log.warning("connection refused: too many connections (from %s)", self.address)
        self._close_with(errors.ApiError(503, errors.TOO_MANY_CONNECTIONS, headers=_RETRY))

    def _close_with(self, error: errors.ApiError | None) -> None:
        """Answer ``error`` (if any) and close; the connection leaves the caps at once."""
        self._disarm()
        self.registry.discard(self)
        self.phase = Phase.ANSWER  # never chosen to make room again
        if self.transport.is_closing() or self._draining:
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The application may still be running: nothing more of its reaches the wire.
            answered = cycle.response_started
            cycle.disconnected = True
            cycle.message_event.set()
            if answered:
                error = None
        if error is None:
            self.transport.close()
            return
        self.transport.write(refusal_bytes(error))
        # Closing with unread request bytes makes the kernel reset the
        # connection, and the client loses the answer: stop sending, read and
        # drop what still comes for a moment, then close.
        self._draining = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.registry.discard(self)
        super().connection_lost(exc)

    # -- deadlines ------------------------------------------------------------

    def _arm(self, seconds: float, expired: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_timed_out(self) -> None:
        self._deadline = None
        seconds = f"{self.settings.header_timeout_seconds:g}"
        self._close_with(errors.ApiError(408, errors.HEADERS_TIMEOUT.format(seconds=seconds)))

    def _body_timed_out(self) -> None:
        self._deadline = None
        seconds = f"{self.settings.body_timeout_seconds:g}"
        self._close_with(errors.ApiError(408, errors.BODY_TIMEOUT.format(seconds=seconds)))

    def _enter(self, phase: Phase) -> None:
        self.phase = phase
        self.phase_since = time.monotonic()

    # -- parsing --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return
        self._unset_keepalive_if_required()
        if self.phase is Phase.IDLE or self.phase is Phase.HEAD:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol upgrades are served (uvicorn's own answer to them).
            self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            self._close_with(self._refused or errors.ApiError(400, errors.MALFORMED_REQUEST))
            return
        if self.phase is Phase.HEAD and self._head_bytes > self.settings.max_header_bytes:
            # Headers still incomplete past the limit: refused before they are whole.
            self._close_with(self._head_too_large())

    def _head_too_large(self) -> errors.ApiError:
        limit = self.settings.max_header_bytes
        if self._url_bytes > limit:
            return errors.ApiError(414, errors.URI_TOO_LONG.format(limit=limit))
        return errors.ApiError(431, errors.HEADERS_TOO_LARGE.format(limit=limit))

    def _refuse_in_parser(self, error: errors.ApiError) -> None:
        """Stop the parser from a callback; :meth:`data_received` answers ``error``."""
        self._refused = error
        raise error

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.phase is not Phase.HEAD:
            if self._deadline is None:
                self._arm(self.settings.header_timeout_seconds, self._headers_timed_out)
            self._enter(Phase.HEAD)
        self._url_bytes = 0
        self._header_count = 0
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self.settings.max_header_bytes:
            self._refuse_in_parser(self._head_too_large())
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Headers that arrived whole in one read are measured here, exactly.
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        settings = self.settings
        if self._header_count > settings.max_header_count:
            limit = settings.max_header_count
            self._refuse_in_parser(
                errors.ApiError(431, errors.TOO_MANY_HEADERS.format(limit=limit))
            )
        if self._header_bytes + self._url_bytes > settings.max_header_bytes:
            self._refuse_in_parser(self._head_too_large())
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_bytes = 0
        self._enter(Phase.BODY)
        self._arm(self.settings.body_timeout_seconds, self._body_timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._enter(Phase.ANSWER)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.phase is Phase.ANSWER and not self.transport.is_closing():
            # Kept alive: uvicorn's keep-alive timeout closes it if nothing comes.
            self._enter(Phase.IDLE)

    def send_400_response(self, msg: str) -> None:
        self._close_with(errors.ApiError(400, errors.MALFORMED_REQUEST))


_RETRY = {"Retry-After": "1"}
_LINGER_SECONDS = 1.0


def guarded_protocol(settings: Settings) -> type[GuardedProtocol]:
    """The protocol with these limits, for a server run in this process (tests)."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": settings})


PROTOCOL_PATH = f"{__name__}:GuardedProtocol"


def uvicorn_options() -> dict[str, Any]:
    """uvicorn's own settings that go with the guard."""
    return {
        "timeout_keep_alive": 5,  # idle clients do not hold connections
        # uvicorn's own concurrency cap answers in plain text; the guard's caps replace it.
        "limit_concurrency": None,
        "ws": "none",
    }
