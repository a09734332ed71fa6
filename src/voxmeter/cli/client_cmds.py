"""Client verbs: ``voxmeter get``, ``voxmeter watch``, ``voxmeter history export``.

They work against a real wolkvox server (``--server 9901``) or a voxmeter
server (``--base-url``), under the client's token discipline.
"""

from __future__ import annotations

import csv
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from tqdm import tqdm

from voxmeter.cli._common import info, table
from voxmeter.client import Client, VoxmeterError
from voxmeter.client.history import History, watch
from voxmeter.client.models import Services, TokenInfo, Usage
from voxmeter.contract.meters import BILLING_METERS, Family, lookup

F = TypeVar("F", bound=Callable[..., Any])
_DURATION = re.compile(r"(\d+)([smh]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def _connection(command: F) -> F:
    options = [
        click.option("--server", help="wolkvox server id: 9901 means https://wv9901.wolkvox.com"),
        click.option("--base-url", help="Any server, e.g. a voxmeter at http://127.0.0.1:8000"),
        click.option("--token", envvar="WOLKVOX_TOKEN", help="Default: $WOLKVOX_TOKEN."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _client(server: str | None, base_url: str | None, token: str | None) -> Client:
    try:
        return Client(token, server=server, base_url=base_url)
    except (ValueError, VoxmeterError) as exc:
        raise click.UsageError(str(exc)) from None


def _record(row: Usage | Services | TokenInfo) -> dict[str, Any]:
    if isinstance(row, Usage):
        return {
            "api": row.api,
            "operation": row.operation,
            "description": row.description,
            "items": str(row.items),
            "date": row.date.isoformat(),
        }
    if isinstance(row, Services):
        return {"licenses": row.licenses, "pbx": row.pbx, **row.flags}
    return {
        "description": row.description,
        "token_limit": row.token_limit,
        "token_use_today": row.token_use_today,
        "all_token_today": row.all_token_today,
        "available": row.available,
    }


def _print(records: list[dict[str, Any]], fmt: str) -> None:
    if not records:
        return
    if fmt == "json":
        click.echo(orjson.dumps(records, option=orjson.OPT_INDENT_2).decode())
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    else:
        table(list(records[0]), [list(r.values()) for r in records])


@click.command()
@click.argument("meter", required=False)
@click.option("--all", "every_meter", is_flag=True, help="Every billing meter, one at a time.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@_connection
def get(
    meter: str | None,
    every_meter: bool,
    fmt: str,
    server: str | None,
    base_url: str | None,
    token: str | None,
) -> None:
    """Print METER's figure (a billing api, or services / token_info)."""
    if every_meter == (meter is not None):
        raise click.UsageError("give a METER or --all")
    with _client(server, base_url, token) as client:
        try:
            if every_meter:
                records = []
                for billing in tqdm(BILLING_METERS, unit=" meters", file=sys.stderr, disable=None):
                    records.append(_record(client.usage(billing.api)))
            elif lookup(Family.BILLING, str(meter)):
                records = [_record(client.usage(str(meter)))]
            elif meter == "services":
                records = [_record(client.services())]
            elif meter == "token_info":
                records = [_record(client.token_info())]
            else:
                raise click.UsageError(f"unknown meter {meter!r}")
        except VoxmeterError as exc:
            raise click.ClickException(str(exc)) from None
    _print(records, fmt)


def _duration(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 30s, 5m or 1h")
    return int(match.group(1)) * _SECONDS[match.group(2)]


@click.command("watch")
@click.argument("meters", nargs=-1)
@click.option("--every", default="5m", show_default=True, help="Polling interval (30s, 5m, 1h).")
@click.option("--history", "path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many polls.")
@_connection
def watch_command(
    meters: tuple[str, ...],
    every: str,
    path: Path,
    count: int | None,
    server: str | None,
    base_url: str | None,
    token: str | None,
) -> None:
    """Poll METERS (default: every billing meter) and append each snapshot to a history."""
    apis = list(meters) or [m.api for m in BILLING_METERS]
    unknown = [api for api in apis if lookup(Family.BILLING, api) is None]
    if unknown:
        raise click.UsageError(f"unknown meter(s): {', '.join(unknown)}")
    interval = _duration(every)
    history = History(path)
    with _client(server, base_url, token) as client:
        try:
            stored = watch(
                client, history, apis, interval, count, time.sleep,
                on_snapshot=lambda n: info(f"snapshot of {n} meters stored in {path}"),
            )  # fmt: skip
        except VoxmeterError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            stored = 0
        finally:
            history.close()
    click.echo(stored)


@click.group("history")
def history_group() -> None:
    """Work with the history that ``voxmeter watch`` collects."""


@history_group.command("export")
@click.option("--history", "path", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv"]), default="csv", show_default=True)
@click.option("--month", help="Only figures of this month (YYYY-MM).")
def history_export(path: Path, fmt: str, month: str | None) -> None:
    """Print every snapshot as CSV."""
    history = History(path)
    try:
        count = history.export_csv(sys.stdout, month)
    finally:
        history.close()
    info(f"{count} rows")
