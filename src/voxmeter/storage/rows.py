"""What both backends select and how a row becomes a domain record.

The column lists and the row-to-model mapping are the same for SQLite and
PostgreSQL but for how each spells two things: a moment (SQLite keeps UTC
microseconds, PostgreSQL a ``timestamptz``) and an operation's services
(a comma-joined string, an array). A backend gives those two as a
:class:`Spelling`; the rest is here once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from voxmeter.domain.ledger import DayFigures, last_gauge_values
from voxmeter.domain.models import (
    Credential,
    LedgerEntry,
    Operation,
    Principal,
    RejectionRecord,
    Token,
    TokenScope,
)

TOKEN_COLUMNS = (
    "t.id, t.operation_id, t.scope, t.description, t.created_at,"
    " (SELECT max(c.last_at) FROM token_calls c WHERE c.token_id = t.id), t.revoked_at"
)
_TOKEN_WIDTH = 7
_OPERATION_WIDTH = 9

# The last action of an event, as effective_events gives it, and what it means.
_STATES = {None: "counted", "amend": "amended", "void": "voided"}

LEDGER_ENTRY_COLUMNS = (
    "event_id, meter, quantity, effective_quantity, last_action, occurred_at, received_at"
)
REJECTION_COLUMNS = "received_at, event_index, event_id, reason"


def operation_columns(services: str) -> str:
    """The operation's columns, its services selected by the backend's ``services`` expression."""
    return (
        "o.id, o.name, o.server_id, o.timezone, o.licenses, o.pbx, o.created_at,"
        f" {services}, o.revision"
    )


@dataclass(frozen=True, slots=True)
class Spelling:
    """How a backend stores what differs between them."""

    operation_columns: str
    moment: Callable[[Any], datetime]
    optional_moment: Callable[[Any], datetime | None]
    services: Callable[[Any], frozenset[str]]

    @property
    def credential_columns(self) -> str:
        return f"{TOKEN_COLUMNS}, {self.operation_columns}, t.secret_hash"

    def operation(self, row: Sequence[Any]) -> Operation:
        return Operation(
            id=row[0],
            name=row[1],
            server_id=row[2],
            timezone=row[3],
            licenses=row[4],
            pbx=row[5],
            created_at=self.moment(row[6]),
            services=self.services(row[7]),
            revision=row[8],
        )

    def token(self, row: Sequence[Any]) -> Token:
        return Token(
            id=row[0],
            operation_id=row[1],
            scope=TokenScope(row[2]),
            description=row[3],
            created_at=self.moment(row[4]),
            last_used_at=self.optional_moment(row[5]),
            revoked_at=self.optional_moment(row[6]),
        )

    def credential(self, row: Sequence[Any]) -> Credential:
        """A row of :attr:`credential_columns`."""
        operation_end = _TOKEN_WIDTH + _OPERATION_WIDTH
        principal = Principal(
            token=self.token(row[:_TOKEN_WIDTH]),
            operation=self.operation(row[_TOKEN_WIDTH:operation_end]),
        )
        return Credential(principal=principal, secret_hash=bytes(row[operation_end]))

    def ledger_entries(self, rows: Iterable[Sequence[Any]]) -> list[LedgerEntry]:
        """Rows of :data:`LEDGER_ENTRY_COLUMNS`."""
        return [
            LedgerEntry(
                event_id=event_id,
                meter=meter,
                quantity=quantity,
                effective_quantity=effective,
                state=_STATES[action],
                occurred_at=self.moment(occurred),
                received_at=self.moment(received),
            )
            for event_id, meter, quantity, effective, action, occurred, received in rows
        ]

    def rejections(self, rows: Iterable[Sequence[Any]]) -> list[RejectionRecord]:
        """Rows of :data:`REJECTION_COLUMNS`."""
        return [
            RejectionRecord(
                received_at=self.moment(received), index=index, event_id=event_id, reason=reason
            )
            for received, index, event_id, reason in rows
        ]


def ledger_figures(
    totals: Iterable[tuple[str, date, int]], gauge_rows: Iterable[tuple[str, date, int]]
) -> dict[tuple[str, date], DayFigures]:
    """Per (meter, day) as the raw ledger counts it, from the counter and minutes meters'
    totals and the gauges' values (ordered by time within each day)."""
    figures: dict[tuple[str, date], DayFigures] = {
        (meter, day): (int(total), None) for meter, day, total in totals
    }
    for key, value in last_gauge_values(gauge_rows).items():
        figures[key] = (0, value)
    return figures
