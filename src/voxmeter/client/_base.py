"""What the sync and async clients share: configuration, parsing, retry and cache policy."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from voxmeter.client.errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    UnexpectedAnswerError,
    error_for,
)
from voxmeter.client.models import Envelope
from voxmeter.client.retry import RetryPolicy
from voxmeter.contract import wire
from voxmeter.contract.meters import Family, Meter, lookup

TOKEN_ENV = "WOLKVOX_TOKEN"
POLLING_INTERVAL = 300.0  # the documented "a consumption every 5 minutes"
MAX_IN_FLIGHT = 2  # the documented simultaneous-request limit
PATHS = wire.REPORT_PATHS


def base_url_for(server: str | int) -> str:
    """``https://wv9901.wolkvox.com`` for server ``9901`` (``24`` becomes ``0024``)."""
    digits = str(server).strip()
    if not digits.isdigit() or len(digits) > 4:
        raise ConfigurationError(f"a server id is up to four digits, not {server!r}")
    return f"https://wv{digits.zfill(4)}.wolkvox.com"


@dataclass
class ClientSettings:
    """A client's configuration, shared by both flavours."""

    base_url: str
    token: str
    timeout: float = 70.0  # past the server's own 60 s limit, so its answer arrives
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_in_flight: int = 1
    cache_ttl: float | None = None
    clock: Callable[[], float] = time.monotonic
    cache: dict[tuple[str, str], tuple[float, Envelope]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        server: str | int | None,
        base_url: str | None,
        token: str | None,
        cache: bool | float,
        max_in_flight: int,
        max_retries: int,
        **options: Any,
    ) -> ClientSettings:
        if (server is None) == (base_url is None):
            raise ConfigurationError("give exactly one of server= and base_url=")
        if token is None:
            token = os.environ.get(TOKEN_ENV)
            if not token:
                raise ConfigurationError(f"no token: pass token= or set {TOKEN_ENV}")
        elif not token.strip():
            # An explicit empty token is a mistake (an unset variable in a
            # script, say); quietly using another token instead would hide it.
            raise ConfigurationError("the token given is empty")
        if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
            raise ConfigurationError(f"max_in_flight must be 1 to {MAX_IN_FLIGHT}")
        ttl = POLLING_INTERVAL if cache is True else (float(cache) if cache else None)
        url = base_url_for(server) if server is not None else str(base_url).rstrip("/")
        return cls(
            base_url=url,
            token=token,
            cache_ttl=ttl,
            max_in_flight=max_in_flight,
            retry=RetryPolicy(max_retries=max_retries),
            **options,
        )

    @property
    def headers(self) -> dict[str, str]:
        return {wire.TOKEN_HEADER: self.token, "accept": "application/json"}

    def cached(self, key: tuple[str, str]) -> Envelope | None:
        if self.cache_ttl is None or key not in self.cache:
            return None
        stored_at, envelope = self.cache[key]
        if self.clock() - stored_at >= self.cache_ttl:
            del self.cache[key]
            return None
        return envelope

    def remember(self, key: tuple[str, str], envelope: Envelope) -> None:
        if self.cache_ttl is not None:
            self.cache[key] = (self.clock(), envelope)


def resolve(family: Family, api: str) -> Meter:
    meter = lookup(family, api)
    if meter is None:
        raise ConfigurationError(f"{api!r} is not a {family.value} api of the catalogue")
    return meter


def request_key(family: Family, api: str, params: dict[str, str]) -> tuple[str, str]:
    query = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return (PATHS[family], f"api={api}&{query}")


def envelope_of(response: httpx.Response) -> Envelope:
    """The envelope of an answer, or the error it stands for."""
    headers = {k.lower(): v for k, v in response.headers.items()}
    try:
        body = response.json()
    except ValueError:
        body = {"msg": response.text[:200]}
    if not isinstance(body, dict):
        body = {"msg": "unexpected answer", "data": body}
    envelope = Envelope.parse(body, headers)
    if response.status_code != 200 or envelope.code != 200:
        raise error_for(response.status_code or envelope.code, body, headers)
    return envelope


def rows_of(envelope: Envelope, api: str) -> list[dict[str, Any]]:
    """The rows of a successful answer: at least one, each an object."""
    rows = envelope.data
    if not rows or not all(isinstance(row, dict) for row in rows):
        raise UnexpectedAnswerError(f"{api}: the answer has no rows of fields: {rows!r:.200}")
    return rows


def transport_error(exc: httpx.TransportError, url: str) -> APIConnectionError:
    """A network failure, naming where the client tried to go and why it failed."""
    cause = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"no answer from {url} in time ({cause})")
    return APIConnectionError(f"cannot reach {url}: {cause}")
