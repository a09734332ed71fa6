"""The ``voxmeter`` command."""

from __future__ import annotations

import os

import click

from voxmeter.cli import (
    client_cmds,
    db,
    ledger,
    operations,
    serve,
    statements,
    tokens,
    usage,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="VOXMETER_DATABASE_URL",
    help="sqlite:///FILE (default sqlite:///voxmeter.db) or postgresql://…",
)
@click.version_option(package_name="voxmeter")
def main(database_url: str | None) -> None:
    """voxmeter: usage metering and billing reports, wolkvox API v2 compatible."""
    if database_url:
        # The environment is how the setting reaches server worker processes.
        os.environ["VOXMETER_DATABASE_URL"] = database_url


for command in (
    serve.serve,
    serve.demo,
    db.db,
    operations.operation,
    tokens.token,
    usage.usage,
    ledger.ledger,
    client_cmds.get,
    client_cmds.watch_command,
    client_cmds.history_group,
    statements.pricebook,
    statements.subscribe,
    statements.statement,
):
    main.add_command(command)
