"""``voxmeter.Client``: the blocking client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
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

_SLOTS: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def _slots(token: str, limit: int) -> threading.BoundedSemaphore:
    """One semaphore per token in this process, shared by every client of the token."""
    with _SLOTS_LOCK:
        return _SLOTS.setdefault((token, limit), threading.BoundedSemaphore(limit))


@with_meter_methods
class Client:
    """Calls a wolkvox or voxmeter server under the token discipline.

    At most ``max_in_flight`` calls of one token run at a time in this process
    (others wait their turn); refusals that may pass later are retried with
    exponential backoff and jitter, honouring ``Retry-After``; an invalid
    token or an exhausted quota is never retried. ``cache=True`` answers a
    repeated call from memory for 5 minutes, the documented polling interval.
    Every billing meter of the catalogue has a method: ``client.ivr_calls()``.
    """

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
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
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
        self._http = httpx.Client(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=timeout,
            transport=transport,
        )
        self._sleep = sleep
        self._on_retry = on_retry
        self._slots = _slots(self._settings.token, max_in_flight)

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    def get_raw(
        self, api: str, family: Family = Family.BILLING, params: Mapping[str, str] | None = None
    ) -> Envelope:
        """The envelope as sent (``code`` normalised), for anything the typed calls hide."""
        params = dict(params or {})
        resolve(family, api)
        settings = self._settings
        key = request_key(family, api, params)
        cached = settings.cached(key)
        if cached is not None:
            return cached

        def call() -> Envelope:
            try:
                with self._slots:
                    response = self._http.get(PATHS[family], params={"api": api, **params})
            except httpx.TransportError as exc:
                raise transport_error(exc, settings.base_url) from None
            return envelope_of(response)

        envelope = settings.retry.retrying(self._sleep, self._on_retry)(call)
        settings.remember(key, envelope)
        return envelope

    def get(self, api: str, **params: str) -> list[Usage]:
        """Every row of a billing meter (one, or one per day with ``detail="daily"``)."""
        meter = resolve(Family.BILLING, api)
        rows = rows_of(self.get_raw(api, params=params), api)
        return [Usage.parse(meter, row) for row in rows]

    def usage(self, api: str, **params: str) -> Usage:
        """The month-to-date figure of a billing meter."""
        return self.get(api, **params)[0]

    def services(self) -> Services:
        return Services.parse(rows_of(self.get_raw("services", Family.INFORMATION), "services")[0])

    def token_info(self) -> TokenInfo:
        """Where the token stands today (this call counts as one use)."""
        envelope = self.get_raw("token_info", Family.INFORMATION)
        return TokenInfo.parse(rows_of(envelope, "token_info")[0])

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:  # the generated meter methods, for type checkers
        raise AttributeError(name)
