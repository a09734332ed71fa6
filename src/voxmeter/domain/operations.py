"""Rules for an operation's fields, shared by every way of setting them."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voxmeter.contract.services import SERVICE_FLAGS

_SERVER_ID = re.compile(r"\d{4}")
MAX_NAME_LENGTH = 120


class OperationFieldError(ValueError):
    pass


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise OperationFieldError(
            f"operation name must be 1 to {MAX_NAME_LENGTH} printable characters"
        )
    return name


def check_server_id(server_id: str) -> str:
    """Four digits with leading zeros, as in the ``wv0024`` host names."""
    if not _SERVER_ID.fullmatch(server_id):
        raise OperationFieldError(f"server id must be four digits (like 0024), not {server_id!r}")
    return server_id


def check_timezone(timezone: str) -> str:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise OperationFieldError(f"unknown IANA time zone {timezone!r}") from None
    return timezone


def check_count(name: str, value: int) -> int:
    if value < 0:
        raise OperationFieldError(f"{name} must not be negative")
    return value


def check_services(services: frozenset[str]) -> frozenset[str]:
    unknown = services - set(SERVICE_FLAGS)
    if unknown:
        raise OperationFieldError(
            f"unknown service(s) {', '.join(sorted(unknown))}; known: {', '.join(SERVICE_FLAGS)}"
        )
    return services
