"""One method per billing meter, generated from the catalogue (never hand-copied)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from voxmeter.contract.meters import BILLING_METERS, Meter

C = TypeVar("C", bound=type)


def _method(meter: Meter, is_async: bool) -> Callable[..., Any]:
    if is_async:

        async def call_async(self: Any, **params: str) -> Any:
            return await self.usage(meter.api, **params)

        method: Callable[..., Any] = call_async
    else:

        def call(self: Any, **params: str) -> Any:
            return self.usage(meter.api, **params)

        method = call
    method.__name__ = method.__qualname__ = meter.api
    method.__doc__ = (
        f"{meter.description} ({meter.kind.value}, in {meter.unit}): the `{meter.api}` row."
    )
    return method


def with_meter_methods(cls: C) -> C:
    """Add ``cls.<api>()`` for every billing meter; async when ``cls.usage`` is."""
    is_async = inspect.iscoroutinefunction(getattr(cls, "usage"))  # noqa: B009
    for meter in BILLING_METERS:
        setattr(cls, meter.api, _method(meter, is_async))
    return cls
