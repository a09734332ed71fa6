"""``voxmeter admin``: the people and keys that may use the admin API and console."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import click

from voxmeter.cli._common import info, prepare_schema, refused, settings
from voxmeter.contract.errors import ApiError
from voxmeter.domain.admins import IdentityKind, Role
from voxmeter.domain.clock import system_clock
from voxmeter.services.admins import COMMAND_LINE, AdminService
from voxmeter.storage.admin import open_admin_store


@click.group()
def admin() -> None:
    """Admin identities for the admin API and the web console."""


@admin.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    default=Role.VIEWER.value,
    show_default=True,
    help="owner: everything; admin: change operations, tokens, usage; viewer: read only.",
)
@click.option("--key", "as_key", is_flag=True, help="An API key for scripts instead of a person.")
def create(name: str, role: str, as_key: bool) -> None:
    """Create an admin; prints the password (or the key) once: it is stored only hashed."""
    config = settings()
    prepare_schema(config.database_url)
    kind = IdentityKind.KEY if as_key else IdentityKind.USER

    async def run() -> str:
        store = await open_admin_store(config.database_url)
        service = AdminService(store, system_clock, timedelta(hours=config.admin_session_hours))
        try:
            _, secret = await service.create(COMMAND_LINE, name, Role(role), kind)
        except ApiError as exc:
            raise refused(exc) from None
        finally:
            await store.close()
        return secret

    secret = asyncio.run(run())
    click.echo(secret)
    info(f"{kind.value} {name!r} ({role}) created; this secret is shown only now.")


@admin.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable an admin: its password, key and sessions stop working at once."""
    config = settings()
    prepare_schema(config.database_url)

    async def run() -> None:
        store = await open_admin_store(config.database_url)
        service = AdminService(store, system_clock, timedelta(hours=config.admin_session_hours))
        try:
            await service.disable(COMMAND_LINE, name)
        except ApiError as exc:
            raise refused(exc) from None
        finally:
            await store.close()

    asyncio.run(run())
    info(f"admin {name!r} disabled.")
