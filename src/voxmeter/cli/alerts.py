"""``voxmeter cap``, ``alert`` and ``webhook``: caps, alerts and their delivery."""

from __future__ import annotations

import click

from voxmeter.cli._common import format_option, info, output, with_services
from voxmeter.contract.meters import billing_meter
from voxmeter.contract.quantities import format_items
from voxmeter.services.alerts import shown_level


def _quantity(scaled: int, meter: str) -> str:
    found = billing_meter(meter)
    return format_items(scaled, found.kind.scale if found else 0)


@click.group()
def cap() -> None:
    """Hard caps: batches that would take a meter past its cap this month are refused whole."""


@cap.command("set")
@click.argument("operation_name", metavar="OPERATION")
@click.argument("meter")
@click.argument("quantity")
def cap_set(operation_name: str, meter: str, quantity: str) -> None:
    """Cap METER's month-to-date QUANTITY for OPERATION (in the meter's units)."""
    with_services(lambda services: services.alerts.set_cap(operation_name, meter, quantity))
    info(f"capped {meter} at {quantity} a month for {operation_name!r}")


@cap.command("list")
@format_option()
def cap_list(fmt: str) -> None:
    """Every cap."""
    caps = with_services(lambda services: services.alerts.caps())
    output(
        fmt,
        ("operation", "meter", "cap"),
        [(name, c.meter, _quantity(c.quantity, c.meter)) for name, c in caps],
    )


@cap.command("clear")
@click.argument("operation_name", metavar="OPERATION")
@click.argument("meter")
def cap_clear(operation_name: str, meter: str) -> None:
    """Remove OPERATION's cap on METER."""
    with_services(lambda services: services.alerts.clear_cap(operation_name, meter))
    info(f"removed the cap on {meter} for {operation_name!r}")


@click.group()
def alert() -> None:
    """Alert rules on month-to-date usage, the alerts they raised, their deliveries."""


@alert.group("rule")
def alert_rule() -> None:
    """Alert rules."""


@alert_rule.command("add")
@click.argument("meter")
@click.argument("levels", nargs=-1, required=True)
@click.option("--operation", "operation_name", help="Only this operation (default: every one).")
def alert_rule_add(meter: str, levels: tuple[str, ...], operation_name: str | None) -> None:
    """Alert when METER's month-to-date quantity reaches each of LEVELS.

    A level is a quantity in the meter's units (500) or a percentage of the
    operation's cap on the meter (80%); separate them with spaces or commas.
    """
    rule = with_services(
        lambda services: services.alerts.add_rule(operation_name, meter, list(levels))
    )
    info(f"added rule {rule.id} on {meter}")
    click.echo(rule.id)


@alert_rule.command("list")
@format_option()
def alert_rule_list(fmt: str) -> None:
    """Every alert rule."""
    rules = with_services(lambda services: services.alerts.rules())
    output(
        fmt,
        ("id", "operation", "meter", "levels"),
        [
            (
                r.id,
                name or "(every operation)",
                r.meter,
                ",".join(shown_level(level, r.meter) for level in r.levels),
            )
            for name, r in rules
        ],
    )


@alert.command("list")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@format_option()
def alert_list(limit: int, fmt: str) -> None:
    """The latest alerts: levels crossed and re-armed, newest first."""
    events = with_services(lambda services: services.alerts.events(limit))
    output(
        fmt,
        ("id", "kind", "operation", "meter", "level", "period", "quantity", "at"),
        [
            (
                e.id,
                e.kind.value,
                e.operation,
                e.meter,
                e.level if e.level.endswith("%") else _quantity(int(e.level), e.meter),
                e.period,
                _quantity(e.quantity, e.meter),
                e.created_at.isoformat(),
            )
            for e in events
        ],
    )


@alert.command("deliveries")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@format_option()
def alert_deliveries(limit: int, fmt: str) -> None:
    """The latest webhook deliveries, newest first, with their outcome."""
    deliveries = with_services(lambda services: services.alerts.deliveries(limit))
    output(
        fmt,
        ("id", "alert", "endpoint", "status", "attempts", "last_error", "delivered_at"),
        [
            (
                d.id,
                d.event.id,
                d.endpoint.url,
                d.status,
                d.attempts,
                d.last_error or "",
                d.delivered_at.isoformat() if d.delivered_at else "",
            )
            for d in deliveries
        ],
    )


@alert.command("replay")
@click.argument("delivery_id", type=int)
def alert_replay(delivery_id: int) -> None:
    """Deliver DELIVERY_ID again (the server's delivery task sends it)."""
    with_services(lambda services: services.alerts.replay(delivery_id))
    info(f"delivery {delivery_id} is pending again")


@click.group()
def webhook() -> None:
    """Webhook endpoints that receive alerts, signed per the Standard Webhooks specification."""


@webhook.command("add")
@click.argument("url")
def webhook_add(url: str) -> None:
    """Send every alert to URL from now on; prints its signing secret, once."""
    endpoint = with_services(lambda services: services.alerts.add_endpoint(url))
    info(f"added endpoint {endpoint.id} for {url}; the signing secret is shown once:")
    click.echo(endpoint.secrets[0])


@webhook.command("list")
@format_option()
def webhook_list(fmt: str) -> None:
    """Every endpoint (never its secrets)."""
    endpoints = with_services(lambda services: services.alerts.endpoints())
    output(
        fmt,
        ("id", "url", "secrets", "created_at"),
        [(e.id, e.url, len(e.secrets), e.created_at.isoformat()) for e in endpoints],
    )


@webhook.command("rotate")
@click.argument("endpoint_id", type=int)
def webhook_rotate(endpoint_id: int) -> None:
    """A new signing secret for ENDPOINT_ID, printed once; the previous one keeps signing too."""
    secret = with_services(lambda services: services.alerts.rotate_endpoint(endpoint_id))
    info(f"rotated endpoint {endpoint_id}; the new secret is shown once:")
    click.echo(secret)
