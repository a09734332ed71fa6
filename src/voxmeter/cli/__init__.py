"""The ``voxmeter`` command."""

from __future__ import annotations

import os

import click

from voxmeter import __version__
from voxmeter.cli import (
    admins,
    alerts,
    client_cmds,
    db,
    ledger,
    operations,
    serve,
    statements,
    tokens,
    usage,
)
from voxmeter.cli._common import VoxmeterGroup


@click.group(cls=VoxmeterGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="VOXMETER_DATABASE_URL",
    help="sqlite:///FILE (default sqlite:///voxmeter.db) or postgresql://…",
)
@click.version_option(version=__version__)  # the source's, even in an editable install
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
    admins.admin,
    statements.pricebook,
    statements.subscribe,
    statements.statement,
    alerts.cap,
    alerts.alert,
    alerts.webhook,
):
    main.add_command(command)
