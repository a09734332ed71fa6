"""``voxmeter usage``: usage into the ledger and out of it."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime, tzinfo
from pathlib import Path

import click
import httpx
import orjson
from tqdm import tqdm

from voxmeter.cli._common import format_option, info, output, unknown_meter, with_services
from voxmeter.client import VoxmeterError
from voxmeter.client.ingest import ImportTotals, Uploader, import_file
from voxmeter.client.retry import RetryPolicy
from voxmeter.contract import wire
from voxmeter.contract.meters import BILLING_METERS, billing_meter
from voxmeter.contract.quantities import format_items
from voxmeter.domain.clock import system_clock
from voxmeter.domain.models import CorrectionResult, LedgerEntry
from voxmeter.services import Services


@click.group()
def usage() -> None:
    """Record usage into the ledger."""


@usage.command("record")
@click.argument("operation_name", metavar="OPERATION")
@click.argument("meter")
@click.argument("quantity")
@click.option("--time", "moment", help="ISO 8601 with offset; default now.")
@click.option("--id", "event_id", help="Idempotency id; default a new UUID.")
def usage_record(
    operation_name: str, meter: str, quantity: str, moment: str | None, event_id: str | None
) -> None:
    """Record QUANTITY of METER for OPERATION (a gauge's QUANTITY is its new value)."""
    if billing_meter(meter) is None:
        raise unknown_meter(meter, [m.api for m in BILLING_METERS])
    raw = {
        "id": event_id or str(uuid.uuid4()),
        "meter": meter,
        "quantity": quantity,
        "time": moment or system_clock().isoformat(),
    }

    async def record(services: Services) -> str:
        found = await services.operations.get(operation_name)
        outcome = await services.usage.record(found, [raw])
        return "duplicate" if outcome.duplicates else "recorded"

    status = with_services(record)
    info(f"{status}: {meter} {quantity} for {operation_name!r}")
    click.echo(raw["id"])


@usage.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--base-url", help="The voxmeter server, e.g. http://127.0.0.1:8000")
@click.option("--token", envvar="WOLKVOX_TOKEN", help="An ingest-scope token.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=10_000, show_default=True)
@click.option("--retries", type=click.IntRange(min=0), default=8, show_default=True,
              help="Attempts per batch after a network error, 5xx, 429 or busy token.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Check every event here and send nothing.")
def usage_import(
    file: Path,
    base_url: str | None,
    token: str | None,
    batch_size: int,
    retries: int,
    dry_run: bool,
) -> None:
    """Push FILE (JSON lines, or CSV with a header) to a server, in batches.

    Safe to re-run after an interruption: events already stored come back
    as duplicates and count once. A summary in words goes to stderr and one
    as JSON to stdout (see docs/ingestion.md).
    """
    if not dry_run and not (base_url and token):
        raise click.UsageError("give --base-url and --token (or $WOLKVOX_TOKEN), or --dry-run")
    totals = ImportTotals(dry_run=dry_run)
    try:
        with (
            httpx.Client(
                base_url=base_url or "", headers={wire.TOKEN_HEADER: token or ""}, timeout=120
            ) as http,
            tqdm(unit=" events", file=sys.stderr, disable=None) as bar,
        ):
            uploader = None if dry_run else Uploader(http, RetryPolicy(retries), on_retry=_retrying)
            import_file(file, uploader, batch_size, totals, bar.update)
    except VoxmeterError as exc:
        failure: VoxmeterError | None = exc
    else:
        failure = None
    _summarise(totals)
    if failure is not None:
        raise click.ClickException(str(failure))
    if totals.invalid:
        raise click.ClickException(f"{totals.invalid} events would be refused")


def _retrying(error: VoxmeterError, retry: int, pause: float) -> None:
    info(f"{error}; retry {retry} in {pause:.1f} s")


def _summarise(totals: ImportTotals) -> None:
    for problem in totals.problems[:20]:
        info(str(problem))
    if totals.invalid > 20:
        info(f"… and {totals.invalid - 20} more")
    if totals.dry_run:
        info(f"dry run: {totals.events} events read, {totals.invalid} invalid; nothing sent")
    else:
        info(
            f"{totals.events} events sent in {totals.batches} batches: {totals.accepted} accepted,"
            f" {totals.duplicates} duplicates (already stored)"
            + (f", {totals.retries} retries" if totals.retries else "")
        )
    click.echo(orjson.dumps(totals.summary()).decode())


@usage.command("events")
@click.argument("operation_name", metavar="OPERATION")
@click.option("--rejected", is_flag=True, help="Show refused events and why.")
@click.option("--meter", help="Only events of this meter.")
@click.option("--since", help="Only events at or after this time (ISO; the operation's zone).")
@click.option("--until", help="Only events before this time (ISO; the operation's zone).")
@click.option("--id", "event_id", help="Only the event with this id.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@format_option()
def usage_events(
    operation_name: str,
    rejected: bool,
    meter: str | None,
    since: str | None,
    until: str | None,
    event_id: str | None,
    limit: int,
    fmt: str,
) -> None:
    """Recent accepted events of OPERATION (as they count now), or refused ones.

    Times are shown in the operation's time zone.
    """
    if meter is not None and billing_meter(meter) is None:
        raise unknown_meter(meter, [m.api for m in BILLING_METERS])
    if rejected and (meter or since or until or event_id):
        raise click.UsageError("--meter, --since, --until and --id filter accepted events only")

    async def listing(services: Services) -> tuple[list[str], list[tuple[object, ...]]]:
        found = await services.operations.get(operation_name)
        zone = found.zone

        def local(moment: datetime) -> str:
            return moment.astimezone(zone).isoformat(timespec="seconds")

        if rejected:
            records = await services.usage.rejections(found, limit)
            dropped = await services.usage.dropped_rejections(found)
            if dropped:
                # On stderr, so that JSON and CSV output stay plain data.
                click.echo(f"{dropped} older refused events were dropped from the log", err=True)
            return ["received_at", "index", "id", "reason"], [
                (local(r.received_at), r.index, r.event_id or "-", r.reason) for r in records
            ]
        entries = await services.usage.events(
            found,
            limit,
            meter=meter,
            since=_moment(since, "--since", zone),
            until=_moment(until, "--until", zone),
            event_id=event_id,
        )
        return ["id", "meter", "quantity", "counted", "state", "time"], [
            (e.event_id, e.meter, *_quantities(e), e.state, local(e.occurred_at)) for e in entries
        ]

    headers, rows = with_services(listing)
    output(fmt, headers, rows)


def _moment(text: str | None, option: str, zone: tzinfo) -> datetime | None:
    """An ISO date or date-time; without an offset, in the operation's zone."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date or date-time", param_hint=option
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _quantities(entry: LedgerEntry) -> tuple[str, str]:
    meter = billing_meter(entry.meter)
    scale = meter.kind.scale if meter else 0
    counted = entry.effective_quantity
    return format_items(entry.quantity, scale), (
        "-" if counted is None else format_items(counted, scale)
    )


@usage.command("correct")
@click.argument("operation_name", metavar="OPERATION")
@click.argument("event_id")
@click.option("--void", "void", is_flag=True, help="The event no longer counts.")
@click.option("--amend", "quantity", help="The quantity the event counts from now on.")
@click.option("--reason", default="", help="Kept with the correction for audit.")
def usage_correct(
    operation_name: str, event_id: str, void: bool, quantity: str | None, reason: str
) -> None:
    """Void EVENT_ID or amend its quantity; the original stays in the ledger."""
    if void == (quantity is not None):
        raise click.UsageError("give exactly one of --void and --amend QUANTITY")
    raw: dict[str, object] = {"id": event_id, "action": "void" if void else "amend"}
    if quantity is not None:
        raw["quantity"] = quantity
    if reason:
        raw["reason"] = reason

    async def correct(services: Services) -> CorrectionResult:
        found = await services.operations.get(operation_name)
        (result,) = await services.usage.correct(found, [raw])
        return result

    info(f"{event_id}: {with_services(correct).value}")
