"""Envelope responses for Starlette."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import Response

from voxmeter.contract import envelope
from voxmeter.contract.errors import ApiError
from voxmeter.contract.meters import CodeType


class EnvelopeResponse(Response):
    media_type = "application/json"


def success(
    code_type: CodeType,
    msg: str,
    data: Sequence[Any],
    headers: Mapping[str, str] | None = None,
) -> EnvelopeResponse:
    return EnvelopeResponse(envelope.success(code_type, msg, data), 200, headers=headers)


def failure(error: ApiError) -> EnvelopeResponse:
    return EnvelopeResponse(envelope.failure(error), error.status, headers=error.headers)
