"""``voxmeter.AsyncClient``: the asyncio client, with the same discipline."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from voxmeter.client._base import (
    PATHS,
    Settings,
    envelope_of,
    is_retryable,
    request_key,
    resolve,
    transport_error,
)
from voxmeter.client.errors import VoxmeterError
from voxmeter.client.meters import with_meter_methods
from voxmeter.client.models import Envelope, Services, TokenInfo, Usage
from voxmeter.contract.meters import Family

_SLOTS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, int], asyncio.Semaphore]
] = weakref.WeakKeyDictionary()


def _slots(token: str, limit: int) -> asyncio.Semaphore:
    """One semaphore per token and event loop, shared by every client of the token."""
    per_loop = _SLOTS.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault((token, limit), asyncio.Semaphore(limit))


@with_meter_methods
class AsyncClient:
    """The asyncio twin of :class:`voxmeter.Client`; see there."""

    def __init__(
        self,
        token: str | None = None,
        *,
        server: str | int | None = None,
        base_url: str | None = None,
        cache: bool | float = False,
        max_in_flight: int = 1,
        max_retries: int = 3,
        timeout: float = 70.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = Settings.build(
            server=server,
            base_url=base_url,
            token=token,
            cache=cache,
            max_in_flight=max_in_flight,
            max_retries=max_retries,
            timeout=timeout,
            clock=clock,
        )
        self._http = httpx.AsyncClient(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=timeout,
            transport=transport,
        )
        self._sleep = sleep

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    async def get_raw(
        self, api: str, family: Family = Family.BILLING, params: Mapping[str, str] | None = None
    ) -> Envelope:
        params = dict(params or {})
        resolve(family, api)
        settings = self._settings
        key = request_key(family, api, params)
        cached = settings.cached(key)
        if cached is not None:
            return cached
        slots = _slots(settings.token, settings.max_in_flight)
        attempt = 0
        while True:
            try:
                async with slots:
                    response = await self._http.get(PATHS[family], params={"api": api, **params})
                envelope = envelope_of(response)
            except httpx.TransportError as exc:
                error: VoxmeterError = transport_error(exc)
            except VoxmeterError as exc:
                error = exc
            else:
                settings.remember(key, envelope)
                return envelope
            if not is_retryable(error) or attempt >= settings.max_retries:
                raise error
            await self._sleep(settings.delay(attempt, error))
            attempt += 1

    async def get(self, api: str, **params: str) -> list[Usage]:
        meter = resolve(Family.BILLING, api)
        return [Usage.parse(meter, row) for row in (await self.get_raw(api, params=params)).data]

    async def usage(self, api: str, **params: str) -> Usage:
        return (await self.get(api, **params))[0]

    async def services(self) -> Services:
        envelope = await self.get_raw("services", Family.INFORMATION)
        return Services.parse(envelope.data[0])

    async def token_info(self) -> TokenInfo:
        envelope = await self.get_raw("token_info", Family.INFORMATION)
        return TokenInfo.parse(envelope.data[0])

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:  # the generated meter methods, for type checkers
        raise AttributeError(name)
