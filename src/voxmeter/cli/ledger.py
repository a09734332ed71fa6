"""``voxmeter ledger``: proof that the totals agree with the raw events."""

from __future__ import annotations

import click

from voxmeter.cli._common import info, table, with_services
from voxmeter.domain.models import Discrepancy
from voxmeter.services import Services


@click.group()
def ledger() -> None:
    """Check the ledger."""


@ledger.command("verify")
@click.argument("operation_name", metavar="[OPERATION]", required=False)
def ledger_verify(operation_name: str | None) -> None:
    """Recompute every daily total from the raw events and compare with the rollups."""

    async def verify(services: Services) -> list[tuple[str, Discrepancy]]:
        chosen = (
            [await services.operations.get(operation_name)]
            if operation_name
            else await services.operations.list()
        )
        found = []
        for operation in chosen:
            found += [(operation.name, d) for d in await services.ledger.verify(operation)]
        return found

    found = with_services(verify)
    if found:
        table(
            ["operation", "meter", "day", "rollup", "ledger"],
            [(name, d.meter, d.day.isoformat(), d.rollup, d.ledger) for name, d in found],
        )
        raise click.ClickException(f"{len(found)} daily totals disagree with the ledger")
    info("every daily total agrees with the ledger")
