"""``voxmeter db``: the database schema."""

from __future__ import annotations

import click

from voxmeter.cli._common import info, settings
from voxmeter.storage import schema


@click.group()
def db() -> None:
    """Manage the database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending schema migration."""
    url = settings().database_url
    schema.upgrade(url)
    info(f"schema at revision {schema.head_revision()}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Take the schema back to REVISION, to run an earlier release on it."""
    url = settings().database_url
    schema.downgrade(url, revision)
    info(f"schema at revision {schema.current_revision(url)}")
