"""Client verbs: ``voxmeter get``, ``voxmeter watch``, ``voxmeter history export``.

They work against a real wolkvox server (``--server 9901``) or a voxmeter
server (``--base-url``), under the client's token discipline.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from tqdm import tqdm

from voxmeter.cli._common import (
    BadInput,
    format_option,
    info,
    output,
    output_records,
    unknown_meter,
)
from voxmeter.client import Client, VoxmeterError
from voxmeter.client._base import POLLING_INTERVAL, TOKEN_ENV, rows_of
from voxmeter.client.history import COLUMNS, History, watch
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
    if (server is None) == (base_url is None):
        raise click.UsageError("give exactly one of --server and --base-url")
    if token is None:
        raise click.UsageError(f"give --token or set ${TOKEN_ENV}")
    try:
        return Client(token, server=server, base_url=base_url, on_retry=_retrying)
    except VoxmeterError as exc:
        raise click.UsageError(str(exc)) from None


def _retrying(error: VoxmeterError, retry: int, pause: float) -> None:
    info(f"{error}; retry {retry} in {pause:.1f} s")


INFORMATION = ("services", "token_info")
METER_NAMES = [m.api for m in BILLING_METERS] + list(INFORMATION)


def _fetch(client: Client, api: str, typed: bool) -> list[dict[str, Any]]:
    """The rows of ``api``: as the server sent them, or typed (for the table)."""
    meter = lookup(Family.BILLING, api)
    family = Family.BILLING if meter else Family.INFORMATION
    rows = rows_of(client.get_raw(api, family), api)
    if not typed:
        return [{"api": api, **row} if meter else row for row in rows]
    if meter:
        return [asdict(Usage.parse(meter, row)) for row in rows]
    if api == "services":
        services = Services.parse(rows[0])
        return [{"licenses": services.licenses, "pbx": services.pbx, **services.flags}]
    return [asdict(TokenInfo.parse(rows[0]))]


@click.command()
@click.argument("meter", required=False)
@click.option("--all", "every_meter", is_flag=True, help="Every billing meter, one at a time.")
@format_option()
@_connection
def get(
    meter: str | None,
    every_meter: bool,
    fmt: str,
    server: str | None,
    base_url: str | None,
    token: str | None,
) -> None:
    """Print METER's figure (a billing api, or services / token_info).

    json and csv show the values exactly as the server sent them; the
    table shows them typed (numbers, dates, yes/no as booleans).
    """
    if every_meter == (meter is not None):
        raise click.UsageError("give a METER or --all")
    apis = [m.api for m in BILLING_METERS] if every_meter else [str(meter)]
    if apis[0] not in METER_NAMES:
        raise unknown_meter(apis[0], METER_NAMES)
    records: list[dict[str, Any]] = []
    failure: VoxmeterError | None = None
    with _client(server, base_url, token) as client:
        progress = tqdm(
            apis, unit=" meters", file=sys.stderr, disable=None if every_meter else True
        )
        try:
            for api in progress:
                records += _fetch(client, api, typed=fmt == "table")
        except VoxmeterError as exc:
            failure = exc
        finally:
            progress.close()
    # What was fetched before a refusal cost calls of the day's quota: show it.
    if records:
        output_records(fmt, records)
    if failure is not None:
        done = f" (after {len(records)} of {len(apis)} meters)" if every_meter else ""
        raise click.ClickException(f"{failure}{done}")


def _duration(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 30s, 5m or 1h")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _plan(client: Client, apis: list[str], interval: float, max_share: int) -> str:
    """The day's calls of polling ``apis`` every ``interval``, checked against the token's limit."""
    standing = client.token_info()
    calls = math.ceil(86_400 / interval) * len(apis)
    budget = standing.token_limit * max_share // 100
    plan = (
        f"{len(apis)} meters every {_shown(interval)}: {calls} calls a day;"
        f" this token may make {standing.token_limit} ({max_share} %: {budget})"
    )
    if calls > budget:
        slowest = max(math.ceil(86_400 * len(apis) / max(budget, 1)), POLLING_INTERVAL)
        raise BadInput(
            f"{plan}. Poll fewer meters, at least every {_shown(slowest)} for these,"
            " or allow more with --max-share"
        )
    return plan


def _shown(seconds: float) -> str:
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m" if not rest else f"{minutes}m{rest}s" if minutes else f"{rest}s"


def _print_snapshot(taken_at: datetime, rows: list[Usage]) -> None:
    moment = taken_at.isoformat(timespec="seconds")
    for row in rows:
        click.echo(f"{moment}  {row.api}  {row.items}  {row.date.isoformat()}")


@click.command("watch")
@click.argument("meters", nargs=-1)
@click.option(
    "--every", default="5m", show_default=True,
    help="Polling interval (5m, 1h); not under 5m, the API's polling interval.",
)  # fmt: skip
@click.option("--history", "path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many polls.")
@click.option(
    "--max-share", type=click.IntRange(1, 100), default=50, show_default=True,
    help="Percent of the token's daily calls the polling may use.",
)  # fmt: skip
@_connection
def watch_command(
    meters: tuple[str, ...],
    every: str,
    path: Path,
    count: int | None,
    max_share: int,
    server: str | None,
    base_url: str | None,
    token: str | None,
) -> None:
    """Poll METERS (default: every billing meter), print and keep each snapshot in a history.

    Before polling, token_info tells the token's daily limit (one call); a
    plan that would use more than --max-share of it is refused. Ctrl-C stops.
    """
    apis = list(meters) or [m.api for m in BILLING_METERS]
    billing = [m.api for m in BILLING_METERS]
    for api in apis:
        if api not in billing:
            raise unknown_meter(api, billing)
    interval = _duration(every)
    if interval < POLLING_INTERVAL:
        raise click.BadParameter(
            f"{every!r} is under {_shown(POLLING_INTERVAL)}, the API's polling interval",
            param_hint="--every",
        )
    try:
        with _client(server, base_url, token) as client:
            try:
                info(_plan(client, apis, interval, max_share))
                history = History(path)
                try:
                    watch(client, history, apis, interval, count, time.sleep, _print_snapshot)
                finally:
                    history.close()
            except VoxmeterError as exc:
                raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        return  # Ctrl-C is how a watch ends: every snapshot taken is already stored


@click.group("history")
def history_group() -> None:
    """Work with the history that ``voxmeter watch`` collects."""


@history_group.command("export")
@click.option("--history", "path", required=True, type=click.Path(exists=True, path_type=Path))
@format_option(default="csv")
@click.option("--month", help="Only figures of this month (YYYY-MM).")
def history_export(path: Path, fmt: str, month: str | None) -> None:
    """Print every snapshot."""
    history = History(path)
    try:
        rows = history.rows(month)
    finally:
        history.close()
    output(fmt, COLUMNS, rows)
    info(f"{len(rows)} rows")
