"""``voxmeter operation``: operations (tenants)."""

from __future__ import annotations

import click

from voxmeter.cli._common import administer, format_option, info, output, remote_options, table
from voxmeter.contract.services import SERVICE_FLAGS
from voxmeter.domain.models import Operation

_SERVICE = click.Choice(SERVICE_FLAGS)


def show(operation: Operation) -> None:
    table(
        ["field", "value"],
        [
            ("name", operation.name),
            ("server_id", operation.server_id),
            ("timezone", operation.timezone),
            ("licenses", operation.licenses),
            ("pbx", operation.pbx),
            ("services", ",".join(sorted(operation.services)) or "-"),
            ("created_at", operation.created_at.isoformat()),
        ],
    )


@click.group()
def operation() -> None:
    """Create and inspect operations (tenants)."""


@operation.command("create")
@click.argument("name")
@click.option("--licenses", type=int, required=True, help="Active licenses (quota = × 1000).")
@click.option("--pbx", type=int, default=0, show_default=True, help="Active PBXs.")
@click.option("--service", "services", type=_SERVICE, multiple=True, help="Enabled service.")
@click.option("--timezone", default="America/Bogota", show_default=True, help="IANA zone.")
@click.option("--server-id", default="0001", show_default=True, help="Four-digit server id.")
@remote_options
def operation_create(
    name: str, licenses: int, pbx: int, services: tuple[str, ...], timezone: str, server_id: str
) -> None:
    """Create operation NAME."""
    created = administer(
        lambda admin: admin.create_operation(
            name,
            licenses=licenses,
            pbx=pbx,
            services=frozenset(services),
            timezone=timezone,
            server_id=server_id,
        )
    )
    info(f"created operation {created.name!r}")
    show(created)


@operation.command("list")
@remote_options
@format_option()
def operation_list(fmt: str) -> None:
    """List every operation."""
    found = administer(lambda admin: admin.operations())
    output(
        fmt,
        ["name", "server_id", "timezone", "licenses", "pbx", "services"],
        [
            (o.name, o.server_id, o.timezone, o.licenses, o.pbx, ",".join(sorted(o.services)))
            for o in found
        ],
    )


@operation.command("show")
@click.argument("name")
@remote_options
def operation_show(name: str) -> None:
    """Show operation NAME."""
    show(administer(lambda admin: admin.operation(name)))


@operation.command("update")
@click.argument("name")
@click.option("--licenses", type=int)
@click.option("--pbx", type=int)
@click.option("--service", "services", type=_SERVICE, multiple=True, help="Replaces the set.")
@click.option("--no-services", is_flag=True, help="Disable every service.")
@click.option("--timezone")
@click.option("--server-id")
@remote_options
def operation_update(
    name: str,
    licenses: int | None,
    pbx: int | None,
    services: tuple[str, ...],
    no_services: bool,
    timezone: str | None,
    server_id: str | None,
) -> None:
    """Change fields of operation NAME; fields not given stay as they are."""
    chosen = frozenset() if no_services else (frozenset(services) if services else None)
    updated = administer(
        lambda admin: admin.update_operation(
            name,
            licenses=licenses,
            pbx=pbx,
            services=chosen,
            timezone=timezone,
            server_id=server_id,
        )
    )
    show(updated)
