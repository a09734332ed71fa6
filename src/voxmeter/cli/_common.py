"""Shared plumbing of the CLI: settings, the store, output."""

from __future__ import annotations

import asyncio
import csv
import difflib
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
import orjson
import psycopg
import sqlalchemy.exc

from voxmeter.client.admin import AdminClient, AdminUnreachable
from voxmeter.config import Settings
from voxmeter.contract.errors import ApiError
from voxmeter.domain.clock import system_clock
from voxmeter.services import Services
from voxmeter.services.administration import Administration, LocalAdministration
from voxmeter.storage import is_postgres, open_store, schema
from voxmeter.storage.base import SchemaNotCurrent, StorageError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("table", "json", "csv")


class BadInput(click.ClickException):
    """Refused for what was given, as click refuses a bad option."""

    exit_code = 2


def settings() -> Settings:
    try:
        config = Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    url = config.database_url
    if not (is_postgres(url) or url.startswith("sqlite:///")):
        raise BadInput(
            f"unsupported database URL {shown_url(url)!r}: use sqlite:///FILE or postgresql://…"
        )
    return config


def shown_url(url: str) -> str:
    """``url`` without its password, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class VoxmeterGroup(click.Group):
    """The top command: a database that cannot be reached is one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
            cause = exc.orig if isinstance(exc, sqlalchemy.exc.OperationalError) else exc
            first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else "failed"
            raise BadInput(
                f"cannot reach the database {shown_url(settings().database_url)}: {first_line}"
            ) from None


def prepare_schema(url: str) -> None:
    """SQLite is migrated on first use (zero set-up); PostgreSQL must be upgraded on purpose."""
    if is_postgres(url):
        try:
            schema.ensure_current(url)
        except SchemaNotCurrent as exc:
            raise click.ClickException(str(exc)) from None
    else:
        schema.upgrade(url)


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


def format_option(default: str = "table") -> Callable[[F], F]:
    """The one ``--format`` of every listing command."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        help="table for people; json or csv for programs.",
    )


def output(fmt: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Rows in the chosen format: a table, a JSON array of objects, or CSV with a header."""
    if fmt == "table":
        table(headers, rows)
    else:
        output_records(fmt, [dict(zip(headers, row, strict=True)) for row in rows], headers)


def output_records(
    fmt: str, records: Sequence[dict[str, Any]], headers: Sequence[str] | None = None
) -> None:
    """Records as given: JSON keeps each value's type, CSV and the table show its text."""
    if headers is None:
        headers = list(dict.fromkeys(key for record in records for key in record))
    if fmt == "json":
        text = orjson.dumps(list(records), option=orjson.OPT_INDENT_2, default=str).decode()
        click.echo(text)
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(headers), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    else:
        table(headers, [[record.get(key, "") for key in headers] for record in records])


def unknown_meter(name: str, known: Sequence[str]) -> click.UsageError:
    """A misspelt meter, with the nearest name of the catalogue when one is close."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return click.UsageError(f"unknown meter {name!r}{hint}")
