"""``voxmeter usage``: usage into the ledger and out of it."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import click
import httpx
from tqdm import tqdm

from voxmeter.cli._common import info, table, with_services
from voxmeter.client.ingest import ImportRefused, Uploader, import_file
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
@click.argument("meter", type=click.Choice([m.api for m in BILLING_METERS]), metavar="METER")
@click.argument("quantity")
@click.option("--time", "moment", help="ISO 8601 with offset; default now.")
@click.option("--id", "event_id", help="Idempotency id; default a new UUID.")
def usage_record(
    operation_name: str, meter: str, quantity: str, moment: str | None, event_id: str | None
) -> None:
    """Record QUANTITY of METER for OPERATION (a gauge's QUANTITY is its new value)."""
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
@click.option("--base-url", required=True, help="The voxmeter server, e.g. http://127.0.0.1:8000")
@click.option("--token", envvar="WOLKVOX_TOKEN", required=True, help="An ingest-scope token.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=10_000, show_default=True)
@click.option("--retries", type=click.IntRange(min=0), default=8, show_default=True,
              help="Attempts per batch after a network error, 5xx or busy token.")  # fmt: skip
def usage_import(file: Path, base_url: str, token: str, batch_size: int, retries: int) -> None:
    """Push FILE (JSON lines, or CSV with a header) to a server, in batches.

    Safe to re-run after an interruption: events already stored come back
    as duplicates and count once.
    """
    headers = {wire.TOKEN_HEADER: token}
    with (
        httpx.Client(base_url=base_url, headers=headers, timeout=120) as http,
        tqdm(unit=" events", file=sys.stderr, disable=None) as bar,
    ):
        try:
            totals = import_file(file, Uploader(http, retries=retries), batch_size, bar.update)
        except ImportRefused as refused:
            for problem in refused.problems()[:20]:
                info(problem)
            raise click.ClickException(str(refused)) from None
        except httpx.TransportError as exc:
            raise click.ClickException(f"cannot reach {base_url}: {exc}") from None
    info(
        f"{totals.lines} events in {totals.batches} batches: {totals.accepted} accepted,"
        f" {totals.duplicates} duplicates (already stored)"
    )
    click.echo(f"{totals.accepted}\t{totals.duplicates}")


@usage.command("events")
@click.argument("operation_name", metavar="OPERATION")
@click.option("--rejected", is_flag=True, help="Show refused events and why.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def usage_events(operation_name: str, rejected: bool, limit: int) -> None:
    """Recent accepted events of OPERATION (as they count now), or refused ones."""

    async def listing(services: Services) -> tuple[list[str], list[tuple[object, ...]]]:
        found = await services.operations.get(operation_name)
        if rejected:
            records = await services.usage.rejections(found, limit)
            return ["received_at", "index", "id", "reason"], [
                (r.received_at.isoformat(timespec="seconds"), r.index, r.event_id or "-", r.reason)
                for r in records
            ]
        entries = await services.usage.events(found, limit)
        return ["id", "meter", "quantity", "counted", "state", "time"], [
            (e.event_id, e.meter, *_quantities(e), e.state, e.occurred_at.isoformat())
            for e in entries
        ]

    headers, rows = with_services(listing)
    table(headers, rows)


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
