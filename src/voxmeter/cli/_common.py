"""Shared plumbing of the CLI: settings, the store, output."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import click

from voxmeter.client.admin import AdminClient, AdminUnreachable
from voxmeter.config import Settings
from voxmeter.contract.errors import ApiError
from voxmeter.domain.clock import system_clock
from voxmeter.services import Services
from voxmeter.services.administration import Administration, LocalAdministration
from voxmeter.storage import is_postgres, open_store, schema
from voxmeter.storage.base import SchemaNotCurrent, StorageError

T = TypeVar("T")


def settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def prepare_schema(url: str) -> None:
    """SQLite is migrated on first use (zero set-up); PostgreSQL must be upgraded on purpose."""
    if is_postgres(url):
        try:
            schema.ensure_current(url)
        except SchemaNotCurrent as exc:
            raise click.ClickException(str(exc)) from None
    else:
        schema.upgrade(url)


class BadInput(click.ClickException):
    """Refused for what was given, as click refuses a bad option."""

    exit_code = 2


def refused(error: ApiError) -> click.ClickException:
    """A service's refusal as the CLI shows it: the message, then each detail.

    Exit status 2 when the input was at fault (as for a bad option), 1 otherwise.
    """
    lines = [error.msg]
    for detail in error.data[:20]:
        if isinstance(detail, dict):
            lines.append("  " + ", ".join(f"{key}: {value}" for key, value in detail.items()))
    kind = BadInput if error.status == 400 else click.ClickException
    return kind("\n".join(lines))


def with_services(action: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``action`` with the use cases over the configured store, then close it."""
    config = settings()
    prepare_schema(config.database_url)

    async def run() -> T:
        store = await open_store(config.database_url)
        try:
            return await action(Services.over(store, config, system_clock))
        except ApiError as exc:
            raise refused(exc) from None
        except StorageError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            await store.close()

    return asyncio.run(run())


_URL = "voxmeter.admin_url"
_KEY = "voxmeter.admin_key"


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    ctx.meta[_URL if param.name == "url" else _KEY] = value


def remote_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--url`` and ``--admin-key``: administer a remote server through its admin API."""
    command = click.option(
        "--admin-key",
        envvar="VOXMETER_ADMIN_KEY",
        show_envvar=True,
        expose_value=False,
        callback=_remember,
        help="The admin key (vxa_…) for --url; the variable keeps it out of shell history.",
    )(command)
    return click.option(
        "--url",
        envvar="VOXMETER_ADMIN_URL",
        show_envvar=True,
        expose_value=False,
        callback=_remember,
        help="A voxmeter server to administer through its admin API instead of the database.",
    )(command)


def administer(action: Callable[[Administration], Awaitable[T]]) -> T:
    """Run ``action`` on the database, or on the server ``--url`` names; refusals shown alike."""
    meta = click.get_current_context().meta
    url, key = meta.get(_URL), meta.get(_KEY)
    if not url:
        return with_services(lambda services: action(LocalAdministration(services)))
    if not key:
        raise BadInput("--url needs an admin key: --admin-key or VOXMETER_ADMIN_KEY")

    async def run() -> T:
        client = AdminClient(url, key)
        try:
            return await action(client)
        except ApiError as exc:
            raise refused(exc) from None
        except AdminUnreachable as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            await client.close()

    return asyncio.run(run())


def info(message: str) -> None:
    """A message for the person at the terminal: stderr, so stdout stays scriptable."""
    click.echo(message, err=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Rows as aligned text columns on stdout."""
    cells = [list(map(str, headers))] + [[str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        line = "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")
