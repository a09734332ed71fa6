"""``/admin/api/v1``: caps, alert rules, alerts, webhook endpoints and the delivery log.

The wire side of :class:`voxmeter.services.alerts.AlertService`, the same use
cases ``voxmeter cap``, ``alert`` and ``webhook`` call. Viewers read; admins
change, and every change is written to the audit log. A webhook secret is in
the answer that creates or rotates it, and nowhere else (not in the audit log).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from voxmeter.contract import errors
from voxmeter.contract.meters import billing_meter
from voxmeter.contract.quantities import format_items
from voxmeter.domain.admins import Role
from voxmeter.domain.alerts import AlertEvent, AlertRule, Delivery, Endpoint, MeterCap
from voxmeter.server.admin.api import _done, _field, _found, _limit, _object
from voxmeter.server.admin.auth import admin_caller
from voxmeter.services.alerts import shown_level

# Endpoint and delivery ids are PostgreSQL bigints: longer digit strings are refused.
MAX_ID_DIGITS = 18


def _quantity(scaled: int, meter: str) -> str:
    found = billing_meter(meter)
    return format_items(scaled, found.kind.scale if found else 0)


def cap_view(operation: str, cap: MeterCap) -> dict[str, Any]:
    return {"operation": operation, "meter": cap.meter, "cap": _quantity(cap.quantity, cap.meter)}


def rule_view(operation: str | None, rule: AlertRule) -> dict[str, Any]:
    """``operation`` None: the rule watches every operation."""
    return {
        "id": rule.id,
        "operation": operation,
        "meter": rule.meter,
        "levels": [shown_level(level, rule.meter) for level in rule.levels],
        "created_at": rule.created_at.isoformat(),
    }


def alert_view(event: AlertEvent) -> dict[str, Any]:
    level = event.level if event.level.endswith("%") else _quantity(int(event.level), event.meter)
    return {
        "id": event.id,
        "kind": event.kind.value,
        "rule": event.rule_id,
        "operation": event.operation,
        "meter": event.meter,
        "level": level,
        "period": event.period,
        "threshold": _quantity(event.threshold, event.meter),
        "quantity": _quantity(event.quantity, event.meter),
        "created_at": event.created_at.isoformat(),
    }


def endpoint_view(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint without its secrets: only how many sign."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "secrets": len(endpoint.secrets),
        "created_at": endpoint.created_at.isoformat(),
    }


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "alert": delivery.event.id,
        "endpoint": delivery.endpoint.id,
        "url": delivery.endpoint.url,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at.isoformat(),
        "last_error": delivery.last_error,
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
    }


def _id(request: Request, name: str) -> int:
    text = request.path_params[name]
    if not text.isdigit() or len(text) > MAX_ID_DIGITS or int(text) < 1:
        raise errors.invalid_parameter(name, "a positive whole number")
    return int(text)


def _levels(document: dict[str, Any]) -> list[str]:
    value = document.get("levels")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise errors.invalid_parameter("levels", 'a list of levels, e.g. ["9000", "80%"]')
    return value


# -- caps ------------------------------------------------------------------------------


async def list_caps(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    return _found([cap_view(name, cap) for name, cap in await console.services.alerts.caps()])


async def set_cap(request: Request) -> Response:
    """Cap a meter's month-to-date quantity for an operation, replacing any cap it had."""
    console, caller = await admin_caller(request, Role.ADMIN)
    alerts = console.services.alerts
    document = await _object(request)
    operation = _field(document, "operation", str, "")
    meter = _field(document, "meter", str, "")
    quantity = _field(document, "quantity", str, "")
    before = next(
        (
            cap_view(name, c)
            for name, c in await alerts.caps()
            if (name, c.meter) == (operation, meter)
        ),
        None,
    )
    cap = await console.admins.audited(
        caller, "cap.set", f"{operation}/{meter}", before,
        lambda: alerts.set_cap(operation, meter, quantity),
        lambda done: cap_view(operation, done),
    )  # fmt: skip
    return _done("CAP SET", [cap_view(operation, cap)])


# -- rules and alerts ------------------------------------------------------------------


async def list_rules(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    rules = await console.services.alerts.rules()
    return _found([rule_view(name, rule) for name, rule in rules])


async def add_rule(request: Request) -> Response:
    """Levels on a meter, for one ``operation`` or (absent) every operation."""
    console, caller = await admin_caller(request, Role.ADMIN)
    document = await _object(request)
    operation = _field(document, "operation", str)
    meter = _field(document, "meter", str, "")
    levels = _levels(document)
    rule = await console.admins.audited(
        caller, "alert-rule.add", f"{operation or '*'}/{meter}", None,
        lambda: console.services.alerts.add_rule(operation, meter, levels),
        lambda done: rule_view(operation, done),
    )  # fmt: skip
    return _done("RULE ADDED", [rule_view(operation, rule)])


async def list_alerts(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    events = await console.services.alerts.events(_limit(request))
    return _found([alert_view(event) for event in events])


# -- webhooks and deliveries ------------------------------------------------------------


async def list_webhooks(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    return _found([endpoint_view(e) for e in await console.services.alerts.endpoints()])


async def add_webhook(request: Request) -> Response:
    """A receiver for every alert from now on; its signing secret is in this answer only."""
    console, caller = await admin_caller(request, Role.ADMIN)
    document = await _object(request)
    url = _field(document, "url", str, "")
    endpoint = await console.admins.audited(
        caller, "webhook.add", url, None,
        lambda: console.services.alerts.add_endpoint(url),
        endpoint_view,
    )  # fmt: skip
    return _done("WEBHOOK ADDED", [endpoint_view(endpoint) | {"secret": endpoint.secrets[0]}])


async def rotate_webhook(request: Request) -> Response:
    """A new signing secret, in this answer only; the previous one keeps signing too."""
    console, caller = await admin_caller(request, Role.ADMIN)
    endpoint_id = _id(request, "endpoint_id")
    secret = await console.admins.audited(
        caller, "webhook.rotate", str(endpoint_id), None,
        lambda: console.services.alerts.rotate_endpoint(endpoint_id),
        lambda _: {"id": endpoint_id, "rotated": True},
    )  # fmt: skip
    return _done("WEBHOOK ROTATED", [{"id": endpoint_id, "secret": secret}])


async def list_deliveries(request: Request) -> Response:
    console, _ = await admin_caller(request, Role.VIEWER)
    deliveries = await console.services.alerts.deliveries(_limit(request))
    return _found([delivery_view(d) for d in deliveries])


async def replay_delivery(request: Request) -> Response:
    """Send a delivery again, as soon as a server worker is free."""
    console, caller = await admin_caller(request, Role.ADMIN)
    delivery_id = _id(request, "delivery_id")
    await console.admins.audited(
        caller, "delivery.replay", str(delivery_id), None,
        lambda: console.services.alerts.replay(delivery_id),
        lambda _: {"id": delivery_id, "status": "pending"},
    )  # fmt: skip
    return _done("DELIVERY REPLAYED", [{"id": delivery_id, "status": "pending"}])
