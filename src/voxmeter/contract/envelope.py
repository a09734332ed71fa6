"""The response envelope ``{"code", "error", "msg", "data"}``, in that key order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from voxmeter.contract.errors import ApiError
from voxmeter.contract.meters import CodeType


def success_code(code_type: CodeType) -> int | str:
    """200 as the JSON type the endpoint's page documents."""
    return "200" if code_type is CodeType.STRING else 200


def success(code_type: CodeType, msg: str, data: Sequence[Any]) -> bytes:
    return orjson.dumps({"code": success_code(code_type), "error": None, "msg": msg, "data": data})


def failure(error: ApiError) -> bytes:
    return orjson.dumps(
        {"code": error.status, "error": error.error, "msg": error.msg, "data": error.data}
    )
