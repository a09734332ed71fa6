"""Query-string parameters, refused in the platform's words when absent or ambiguous."""

from __future__ import annotations

from starlette.requests import Request

from voxmeter.contract import errors


def required(request: Request, name: str) -> str:
    value = optional(request, name)
    if value is None:
        raise errors.parameters_required(name)
    return value


def optional(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if not values or not values[0]:
        if len(values) > 1:
            raise errors.invalid_parameter(name, "given more than once")
        return None
    if len(values) > 1 and any(value != values[0] for value in values):
        raise errors.invalid_parameter(name, "given more than once with different values")
    return values[0]
