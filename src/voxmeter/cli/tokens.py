"""``voxmeter token``: API tokens."""

from __future__ import annotations

import click

from voxmeter.cli._common import administer, format_option, info, output, remote_options
from voxmeter.domain.models import TokenScope
from voxmeter.services.reports import token_info_rows


@click.group()
def token() -> None:
    """Create, list and revoke API tokens."""


@token.command("create")
@click.argument("operation_name", metavar="OPERATION")
@click.option("--description", default="", help="What the token is for.")
@click.option(
    "--scope",
    type=click.Choice([s.value for s in TokenScope]),
    default=TokenScope.REPORT.value,
    show_default=True,
    help="report: read the billing/information APIs; ingest: push usage events.",
)
@remote_options
def token_create(operation_name: str, description: str, scope: str) -> None:
    """Create a token for OPERATION and print its secret (shown only this once)."""
    issued = administer(
        lambda admin: admin.create_token(operation_name, TokenScope(scope), description)
    )
    info(
        f"created {scope} token {issued.token.id} for {operation_name!r}; the secret is shown once:"
    )
    click.echo(issued.secret)


@token.command("list")
@click.argument("operation_name", metavar="OPERATION")
@remote_options
@format_option()
def token_list(operation_name: str, fmt: str) -> None:
    """List OPERATION's tokens with today's use (never their secrets).

    The figures are those of ``information.php?api=token_info``.
    """
    rows = []
    for standing in administer(lambda admin: admin.token_standings(operation_name)):
        t = standing.token
        figures = token_info_rows(t, standing.limit, standing.usage)[0]
        rows.append(
            (
                t.id,
                t.scope.value,
                "active" if t.active else "revoked",
                figures["token_limit"],
                figures["token_use_today"],
                figures["all_token_today"],
                figures["available_consumption_options"],
                t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "-",
                t.description,
            )
        )
    headers = [
        "id",
        "scope",
        "state",
        "token_limit",
        "token_use_today",
        "all_token_today",
        "available",
        "last_used_at",
        "description",
    ]
    output(fmt, headers, rows)


@token.command("revoke")
@click.argument("token_id")
@remote_options
def token_revoke(token_id: str) -> None:
    """Revoke TOKEN_ID at once; calls with its secret get 403 from then on."""
    administer(lambda admin: admin.revoke_token(token_id))
    info(f"revoked {token_id}")
