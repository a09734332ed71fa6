"""Query-string parameters, refused in the platform's words when absent or ambiguous."""

from __future__ import annotations

from voxmeter.contract import errors
from voxmeter.server.responses import Query


def required(query: Query, name: str) -> str:
    value = optional(query, name)
    if value is None:
        raise errors.parameters_required(name)
    return value


def optional(query: Query, name: str) -> str | None:
    values = query.get(name)
    if not values or not values[0]:
        if values and len(values) > 1:
            raise errors.invalid_parameter(name, "given more than once")
        return None
    if len(values) > 1 and any(value != values[0] for value in values):
        raise errors.invalid_parameter(name, "given more than once with different values")
    return values[0]
