"""Shared plumbing of the CLI: settings, the store, output."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import click

from voxmeter.config import Settings
from voxmeter.storage import is_postgres, open_store, schema
from voxmeter.storage.base import SchemaNotCurrent, StorageError, Store

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


def with_store(action: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``action`` against the configured store, then close it."""
    url = settings().database_url
    prepare_schema(url)

    async def run() -> T:
        store = await open_store(url)
        try:
            return await action(store)
        except StorageError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            await store.close()

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
