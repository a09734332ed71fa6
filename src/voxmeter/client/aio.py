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
    ClientSettings,
    envelope_of,
    request_key,
    resolve,
    rows_of,
    transport_error,
)
from voxmeter.client.meters import with_meter_methods
from voxmeter.client.models import Envelope, Services, TokenInfo, Usage
from voxmeter.client.retry import OnRetry, quiet
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
        on_retry: OnRetry = quiet,
    ) -> None:
        self._settings = ClientSettings.build(
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
        self._on_retry = on_retry

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

        async def call() -> Envelope:
            try:
                async with slots:
                    response = await self._http.get(PATHS[family], params={"api": api, **params})
            except httpx.TransportError as exc:
                raise transport_error(exc, settings.base_url) from None
            return envelope_of(response)

        envelope: Envelope = await settings.retry.async_retrying(self._sleep, self._on_retry)(call)
        settings.remember(key, envelope)
        return envelope

    async def get(self, api: str, **params: str) -> list[Usage]:
        meter = resolve(Family.BILLING, api)
        rows = rows_of(await self.get_raw(api, params=params), api)
        return [Usage.parse(meter, row) for row in rows]

    async def usage(self, api: str, **params: str) -> Usage:
        return (await self.get(api, **params))[0]

    async def services(self) -> Services:
        envelope = await self.get_raw("services", Family.INFORMATION)
        return Services.parse(rows_of(envelope, "services")[0])

    async def token_info(self) -> TokenInfo:
        envelope = await self.get_raw("token_info", Family.INFORMATION)
        return TokenInfo.parse(rows_of(envelope, "token_info")[0])

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:  # the generated meter methods, for type checkers
        raise AttributeError(name)
