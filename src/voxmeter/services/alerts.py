"""Hard caps, alert rules, webhook endpoints and the delivery log.

Caps and rules take effect inside the store's ledger transactions (see
:class:`voxmeter.storage.ports.AlertStore`); this service only validates and
keeps them. Quantities are given in the meter's own units (``"12.5"``
minutes) and kept scaled, as the ledger keeps them.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from voxmeter.contract import errors
from voxmeter.contract.meters import BILLING_METERS, Meter, billing_meter
from voxmeter.contract.quantities import QuantityError, format_items, to_scaled
from voxmeter.domain.alerts import AlertEvent, AlertRule, Delivery, Endpoint, Level, MeterCap
from voxmeter.domain.clock import Clock
from voxmeter.domain.models import Operation
from voxmeter.services.admin import unknown_operation
from voxmeter.storage.base import Store

SECRET_PREFIX = "whsec_"


def summed_meter(api: str) -> Meter:
    """The billing meter ``api``; 400 for an unknown one or a gauge."""
    meter = billing_meter(api)
    if meter is None:
        known = ", ".join(m.api for m in BILLING_METERS)
        raise errors.invalid_parameter("meter", f"unknown meter {api!r}; known: {known}")
    if not meter.kind.is_summed:
        raise errors.ApiError(400, errors.METER_NOT_SUMMED.format(meter=api))
    return meter


def parse_quantity(meter: Meter, text: str) -> int:
    """``text`` in ``meter``'s units, scaled; 400 unless it is a number at or above zero."""
    try:
        scaled = to_scaled(text, meter.kind.scale)
    except QuantityError as exc:
        raise errors.invalid_parameter("quantity", str(exc)) from None
    if scaled < 0:
        raise errors.invalid_parameter("quantity", "quantity must not be negative")
    return scaled


def parse_levels(meter: Meter, texts: Sequence[str]) -> list[Level]:
    """Levels as given (``"500"``, ``"80%"``), absolute ones scaled; 400 for anything else."""
    levels = []
    for text in (part.strip() for joined in texts for part in joined.split(",")):
        if text.endswith("%"):
            digits = text[:-1].strip()
            if not digits.isdecimal() or not 0 < int(digits) <= 1000:
                raise errors.ApiError(400, errors.RULE_LEVELS_INVALID, [{"level": text}])
            levels.append(Level(int(digits), percent=True))
        else:
            try:
                scaled = to_scaled(text, meter.kind.scale)
            except QuantityError:
                raise errors.ApiError(400, errors.RULE_LEVELS_INVALID, [{"level": text}]) from None
            if scaled <= 0:
                raise errors.ApiError(400, errors.RULE_LEVELS_INVALID, [{"level": text}])
            levels.append(Level(scaled))
    if not levels:
        raise errors.ApiError(400, errors.RULE_LEVELS_INVALID)
    return sorted(set(levels), key=lambda level: (level.percent, level.value))


def shown_level(level: Level, meter: str) -> str:
    """A level as its owner wrote it: a percentage, or a quantity in the meter's units."""
    if level.percent:
        return str(level)
    found = billing_meter(meter)
    return format_items(level.value, found.kind.scale if found else 0)


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: ``whsec_`` and base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def check_secret(secret: str | None) -> str:
    """``secret`` if it is a ``whsec_`` base64 secret, a new one if None; 400 otherwise."""
    if secret is None:
        return new_secret()
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        key = b""
    if not secret.startswith(SECRET_PREFIX) or len(key) < 16:
        raise errors.invalid_parameter("secret", "must be whsec_ and base64 of 16 bytes or more")
    return secret


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise errors.ApiError(400, errors.WEBHOOK_URL_INVALID, [{"url": url}])
    return url


class AlertService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def _operation(self, name: str) -> Operation:
        found = await self._store.get_operation(name)
        if found is None:
            raise unknown_operation(name)
        return found

    async def _names(self) -> dict[int, str]:
        return {o.id: o.name for o in await self._store.list_operations()}

    # -- caps ------------------------------------------------------------------

    async def set_cap(self, operation_name: str, meter: str, quantity: str) -> MeterCap:
        """Cap ``meter``'s month-to-date quantity for the operation (replacing any cap)."""
        found = summed_meter(meter)
        scaled = parse_quantity(found, quantity)
        operation = await self._operation(operation_name)
        await self._store.set_cap(operation.id, found.api, scaled)
        return MeterCap(operation.id, found.api, scaled)

    async def clear_cap(self, operation_name: str, meter: str) -> None:
        """Remove a cap; 404 when there was none."""
        operation = await self._operation(operation_name)
        if not await self._store.clear_cap(operation.id, meter):
            raise errors.ApiError(404, errors.CAP_UNKNOWN.format(meter=meter, name=operation_name))

    async def caps(self) -> list[tuple[str, MeterCap]]:
        """Every cap, with its operation's name."""
        names = await self._names()
        return [(names.get(cap.operation_id, "?"), cap) for cap in await self._store.list_caps()]

    # -- rules -----------------------------------------------------------------

    async def add_rule(
        self, operation_name: str | None, meter: str, levels: Sequence[str]
    ) -> AlertRule:
        """Levels on ``meter``'s month-to-date quantity, for one operation or (None) every one."""
        found = summed_meter(meter)
        parsed = parse_levels(found, levels)
        operation_id = None
        if operation_name is not None:
            operation_id = (await self._operation(operation_name)).id
        return await self._store.add_rule(operation_id, found.api, parsed, self._clock())

    async def rules(self) -> list[tuple[str | None, AlertRule]]:
        """Every rule, with its operation's name (None: every operation)."""
        names = await self._names()
        return [
            (None if rule.operation_id is None else names.get(rule.operation_id, "?"), rule)
            for rule in await self._store.list_rules()
        ]

    async def events(self, limit: int = 100) -> list[AlertEvent]:
        """The latest alerts recorded (crossed and re-armed levels), newest first."""
        return await self._store.alert_events(limit)

    # -- webhooks ----------------------------------------------------------------

    async def add_endpoint(self, url: str, secret: str | None = None) -> Endpoint:
        """A receiver for every alert from now on; its secret is returned this once."""
        return await self._store.add_endpoint(check_url(url), check_secret(secret), self._clock())

    async def endpoints(self) -> list[Endpoint]:
        return await self._store.list_endpoints()

    async def rotate_endpoint(self, endpoint_id: int, secret: str | None = None) -> str:
        """A new secret for the endpoint, returned this once; the previous one signs too."""
        fresh = check_secret(secret)
        if not await self._store.rotate_endpoint(endpoint_id, fresh):
            raise errors.ApiError(404, errors.WEBHOOK_UNKNOWN.format(endpoint_id=endpoint_id))
        return fresh

    async def deliveries(self, limit: int = 100) -> list[Delivery]:
        return await self._store.list_deliveries(limit)

    async def replay(self, delivery_id: int) -> None:
        """Send a delivery again (delivered or failed), as soon as a worker is free."""
        if not await self._store.replay_delivery(delivery_id, self._clock()):
            raise errors.ApiError(404, errors.DELIVERY_UNKNOWN.format(delivery_id=delivery_id))
