"""Administration verbs: operations, tokens, usage, the database."""

from __future__ import annotations

import uuid

import click

from voxmeter.cli._common import info, settings, table, with_store
from voxmeter.contract.meters import BILLING_METERS
from voxmeter.contract.services import SERVICE_FLAGS
from voxmeter.metering import operations as rules
from voxmeter.metering import tokens
from voxmeter.metering.clock import system_clock
from voxmeter.metering.limits import Quota
from voxmeter.metering.models import NewOperation, Operation, OperationChanges, Scope
from voxmeter.metering.reports import token_info_rows
from voxmeter.metering.usage import EventError, Window, validate_event
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
