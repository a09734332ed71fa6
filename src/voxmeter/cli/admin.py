"""Administration verbs: operations, tokens, usage, the database."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import click
import httpx
from tqdm import tqdm

from voxmeter.cli._common import info, settings, table, with_store
from voxmeter.client.ingest import ImportRefused, Uploader, import_file
from voxmeter.contract.meters import BILLING_METERS, billing_meter
from voxmeter.contract.quantities import format_items
from voxmeter.contract.services import SERVICE_FLAGS
from voxmeter.metering import operations as rules
from voxmeter.metering import tokens
from voxmeter.metering.clock import system_clock
from voxmeter.metering.ledger import discrepancies
from voxmeter.metering.limits import Quota
from voxmeter.metering.models import (
    CorrectionResult,
    Discrepancy,
    LedgerEntry,
    NewOperation,
    Operation,
    OperationChanges,
    Scope,
)
from voxmeter.metering.reports import token_info_rows
from voxmeter.metering.usage import (
    EventError,
    Window,
    parse_correction,
    scaled_correction,
    validate_event,
)
from voxmeter.storage import schema
from voxmeter.storage.base import Store, UnknownOperation

_SERVICE = click.Choice(SERVICE_FLAGS)


async def _operation(store: Store, name: str) -> Operation:
    operation = await store.get_operation(name)
    if operation is None:
        raise click.ClickException(f"no operation named {name!r}")
    return operation


def _show(operation: Operation) -> None:
    table(
        ["field", "value"],
        [
            ("name", operation.name),
            ("server_id", operation.server_id),
            ("timezone", operation.timezone),
            ("licenses", operation.licenses),
            ("pbx", operation.pbx),
            ("services", ",".join(sorted(operation.services)) or "-"),
            ("created_at", operation.created_at.isoformat()),
        ],
    )


# -- database -------------------------------------------------------------


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


# -- operations -------------------------------------------------------------


@click.group()
def operation() -> None:
    """Create and inspect operations (tenants)."""


@operation.command("create")
@click.argument("name")
@click.option("--licenses", type=int, required=True, help="Active licenses (quota = × 1000).")
@click.option("--pbx", type=int, default=0, show_default=True, help="Active PBXs.")
@click.option("--service", "services", type=_SERVICE, multiple=True, help="Enabled service.")
@click.option("--timezone", default="America/Bogota", show_default=True, help="IANA zone.")
@click.option("--server-id", default="0001", show_default=True, help="Four-digit server id.")
def operation_create(
    name: str, licenses: int, pbx: int, services: tuple[str, ...], timezone: str, server_id: str
) -> None:
    """Create operation NAME."""
    try:
        new = NewOperation(
            name=rules.check_name(name),
            licenses=rules.check_count("licenses", licenses),
            pbx=rules.check_count("pbx", pbx),
            services=rules.check_services(frozenset(services)),
            timezone=rules.check_timezone(timezone),
            server_id=rules.check_server_id(server_id),
        )
    except rules.OperationFieldError as exc:
        raise click.BadParameter(str(exc)) from None

    async def create(store: Store) -> Operation:
        return await store.create_operation(new, system_clock())

    created = with_store(create)
    info(f"created operation {created.name!r}")
    _show(created)


@operation.command("list")
def operation_list() -> None:
    """List every operation."""
    found = with_store(lambda store: store.list_operations())
    table(
        ["name", "server_id", "timezone", "licenses", "pbx", "services"],
        [
            (o.name, o.server_id, o.timezone, o.licenses, o.pbx, ",".join(sorted(o.services)))
            for o in found
        ],
    )


@operation.command("show")
@click.argument("name")
def operation_show(name: str) -> None:
    """Show operation NAME."""
    _show(with_store(lambda store: _operation(store, name)))


@operation.command("update")
@click.argument("name")
@click.option("--licenses", type=int)
@click.option("--pbx", type=int)
@click.option("--service", "services", type=_SERVICE, multiple=True, help="Replaces the set.")
@click.option("--no-services", is_flag=True, help="Disable every service.")
@click.option("--timezone")
@click.option("--server-id")
def operation_update(
    name: str,
    licenses: int | None,
    pbx: int | None,
    services: tuple[str, ...],
    no_services: bool,
    timezone: str | None,
    server_id: str | None,
) -> None:
    """Change fields of operation NAME; fields not given stay as they are."""
    try:
        changes = OperationChanges(
            licenses=None if licenses is None else rules.check_count("licenses", licenses),
            pbx=None if pbx is None else rules.check_count("pbx", pbx),
            services=frozenset()
            if no_services
            else (rules.check_services(frozenset(services)) if services else None),
            timezone=None if timezone is None else rules.check_timezone(timezone),
            server_id=None if server_id is None else rules.check_server_id(server_id),
        )
    except rules.OperationFieldError as exc:
        raise click.BadParameter(str(exc)) from None

    async def update(store: Store) -> Operation:
        try:
            return await store.update_operation(name, changes)
        except UnknownOperation:
            raise click.ClickException(f"no operation named {name!r}") from None

    _show(with_store(update))


# -- tokens -----------------------------------------------------------------


@click.group()
def token() -> None:
    """Create, list and revoke API tokens."""


@token.command("create")
@click.argument("operation_name", metavar="OPERATION")
@click.option("--description", default="", help="What the token is for.")
@click.option(
    "--scope",
    type=click.Choice([s.value for s in Scope]),
    default=Scope.REPORT.value,
    show_default=True,
    help="report: read the billing/information APIs; ingest: push usage events.",
)
def token_create(operation_name: str, description: str, scope: str) -> None:
    """Create a token for OPERATION and print its secret (shown only this once)."""
    token_id, secret = tokens.mint()

    async def create(store: Store) -> None:
        found = await _operation(store, operation_name)
        await store.create_token(
            token_id,
            found.id,
            tokens.secret_hash(secret),
            Scope(scope),
            description,
            system_clock(),
        )

    with_store(create)
    info(f"created {scope} token {token_id} for {operation_name!r}; the secret is shown once:")
    click.echo(secret)


@token.command("list")
@click.argument("operation_name", metavar="OPERATION")
def token_list(operation_name: str) -> None:
    """List OPERATION's tokens with today's use (never their secrets).

    The figures are those of ``information.php?api=token_info``.
    """
    now = system_clock()

    async def listing(store: Store) -> list[tuple[object, ...]]:
        found = await _operation(store, operation_name)
        quota = Quota.for_call(found, now, settings())
        rows: list[tuple[object, ...]] = []
        for t in await store.list_tokens(found.id):
            info_row = token_info_rows(
                t, quota.token_limit, await store.calls_today(t.id, found.id, quota.day)
            )[0]
            rows.append(
                (
                    t.id,
                    t.scope.value,
                    "active" if t.active else "revoked",
                    info_row["token_limit"],
                    info_row["token_use_today"],
                    info_row["all_token_today"],
                    info_row["available_consumption_options"],
                    t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "-",
                    t.description,
                )
            )
        return rows

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
    table(headers, with_store(listing))


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke TOKEN_ID at once; calls with its secret get 403 from then on."""
    if not with_store(lambda store: store.revoke_token(token_id, system_clock())):
        raise click.ClickException(f"no active token with id {token_id!r}")
    info(f"revoked {token_id}")


# -- usage --------------------------------------------------------------------


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
    now = system_clock()
    raw = {
        "id": event_id or str(uuid.uuid4()),
        "meter": meter,
        "quantity": quantity,
        "time": moment or now.isoformat(),
    }

    async def record(store: Store) -> str:
        found = await _operation(store, operation_name)
        try:
            event = validate_event(raw, found, Window.open_month(found, now, settings()))
        except EventError as exc:
            raise click.BadParameter(str(exc)) from None
        outcome = await store.record_events(found.id, [event], now)
        if outcome.conflicts:
            raise click.ClickException(
                f"event id {event.event_id!r} was already used for a different event"
            )
        return "duplicate" if outcome.duplicates else "recorded"

    status = with_store(record)
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
    headers = {"wolkvox-token": token}
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

    async def listing(store: Store) -> tuple[list[str], list[tuple[object, ...]]]:
        found = await _operation(store, operation_name)
        if rejected:
            records = await store.recent_rejections(found.id, limit)
            return ["received_at", "index", "id", "reason"], [
                (r.received_at.isoformat(timespec="seconds"), r.index, r.event_id or "-", r.reason)
                for r in records
            ]
        entries = await store.recent_events(found.id, limit)
        return ["id", "meter", "quantity", "counted", "state", "time"], [
            (e.event_id, e.meter, *_quantities(e), e.state, e.occurred_at.isoformat())
            for e in entries
        ]

    headers, rows = with_store(listing)
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

    async def correct(store: Store) -> CorrectionResult:
        found = await _operation(store, operation_name)
        meters = await store.event_meters(found.id, [event_id])
        if event_id not in meters:
            raise click.ClickException(f"no event {event_id!r} in {operation_name!r}")
        try:
            correction = scaled_correction(parse_correction(raw), meters[event_id])
        except EventError as exc:
            raise click.BadParameter(str(exc)) from None
        (result,) = await store.correct_events(found.id, [correction], system_clock())
        return result

    info(f"{event_id}: {with_store(correct).value}")


# -- ledger -------------------------------------------------------------------


@click.group()
def ledger() -> None:
    """Check the ledger."""


@ledger.command("verify")
@click.argument("operation_name", metavar="[OPERATION]", required=False)
def ledger_verify(operation_name: str | None) -> None:
    """Recompute every daily total from the raw events and compare with the rollups."""

    async def verify(store: Store) -> list[tuple[str, Discrepancy]]:
        chosen = (
            [await _operation(store, operation_name)]
            if operation_name
            else await store.list_operations()
        )
        found = []
        for operation_ in chosen:
            ledger_figures = await store.ledger_by_day(operation_.id)
            rollup_figures = await store.rollups_by_day(operation_.id)
            found += [(operation_.name, d) for d in discrepancies(ledger_figures, rollup_figures)]
        return found

    found = with_store(verify)
    if found:
        table(
            ["operation", "meter", "day", "rollup", "ledger"],
            [(name, d.meter, d.day.isoformat(), d.rollup, d.ledger) for name, d in found],
        )
        raise click.ClickException(f"{len(found)} daily totals disagree with the ledger")
    info("every daily total agrees with the ledger")
