"""Typed results: numbers as numbers, dates as dates, yes/no as booleans."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from voxmeter.client.errors import UnexpectedAnswerError
from voxmeter.contract.meters import DateFormat, Meter
from voxmeter.contract.services import SERVICE_FLAGS

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Envelope:
    """An answer as the server sent it; ``code`` normalised to an int."""

    code: int
    error: str | None
    msg: str
    data: list[Any]
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: dict[str, Any], headers: dict[str, str]) -> Envelope:
        code = body.get("code")
        return cls(
            code=int(code) if isinstance(code, int | str) and str(code).isdigit() else 0,
            error=body.get("error"),
            msg=str(body.get("msg", "")),
            data=list(body.get("data") or []),
            headers=headers,
        )


@dataclass(frozen=True, slots=True)
class Usage:
    """One billing row: ``items`` is an int for counts and a Decimal for minutes."""

    api: str
    operation: str
    description: str
    items: int | Decimal
    date: date

    @classmethod
    def parse(cls, meter: Meter, row: dict[str, Any]) -> Usage:
        """The typed row, or :class:`UnexpectedAnswerError` naming the field at fault."""
        raw_items = str(row.get("items", "")).strip()
        try:
            items: int | Decimal = (
                Decimal(raw_items) if meter.kind.scale or "." in raw_items else int(raw_items)
            )
        except (ValueError, InvalidOperation):
            raise UnexpectedAnswerError(
                f"{meter.api}: items {row.get('items')!r} is not a number"
            ) from None
        raw_date = str(row.get("date", "")).strip()
        if meter.date_format is DateFormat.MONTH and len(raw_date) == 7:
            raw_date += "-01"  # the month of the report: its first day
        try:
            day = date.fromisoformat(raw_date[:10])
        except ValueError:
            raise UnexpectedAnswerError(
                f"{meter.api}: date {row.get('date')!r} is not a date"
            ) from None
        return cls(
            api=meter.api,
            operation=str(row.get("operation", "")),
            description=str(row.get("description", "")),
            items=items,
            date=day,
        )


@dataclass(frozen=True, slots=True)
class Services:
    licenses: int
    pbx: int
    flags: dict[str, bool]

    def __getattr__(self, name: str) -> bool:
        try:
            return self.flags[name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def parse(cls, row: dict[str, Any]) -> Services:
        return _typed(cls._parse, row, "services")

    @classmethod
    def _parse(cls, row: dict[str, Any]) -> Services:
        flags = {
            key: str(value).strip().lower() == "yes"
            for key, value in row.items()
            if key not in ("licenses", "pbx")
        }
        for flag in SERVICE_FLAGS:
            flags.setdefault(flag, False)
        return cls(
            licenses=int(row.get("licenses") or 0), pbx=int(row.get("pbx") or 0), flags=flags
        )


@dataclass(frozen=True, slots=True)
class TokenInfo:
    description: str
    token_limit: int
    token_use_today: int
    all_token_today: int
    available: int

    @classmethod
    def parse(cls, row: dict[str, Any]) -> TokenInfo:
        return _typed(cls._parse, row, "token_info")

    @classmethod
    def _parse(cls, row: dict[str, Any]) -> TokenInfo:
        return cls(
            description=str(row.get("description", "")),
            token_limit=int(row.get("token_limit") or 0),
            token_use_today=int(row.get("token_use_today") or 0),
            all_token_today=int(row.get("all_token_today") or 0),
            available=int(row.get("available_consumption_options") or 0),
        )


def _typed(parse: Callable[[dict[str, Any]], T], row: dict[str, Any], api: str) -> T:
    try:
        return parse(row)
    except ValueError as exc:
        raise UnexpectedAnswerError(f"{api}: {exc}") from None
