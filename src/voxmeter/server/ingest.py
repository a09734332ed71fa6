"""``/api/v2/events``: usage in (batches, corrections) and the operator's view of it.

The wire side only: bodies read and decoded, answers shaped. What a batch
means (validation, all or nothing, the rejection log) is
:mod:`voxmeter.services.usage`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from voxmeter.contract import errors, messages
from voxmeter.contract.meters import CodeType, billing_meter
from voxmeter.contract.quantities import format_items
from voxmeter.domain.models import CorrectionResult, LedgerEntry, Principal, TokenScope
from voxmeter.server import params, responses
from voxmeter.server.auth import authenticate
from voxmeter.server.limits import LimitedCall
from voxmeter.server.responses import parse_query
from voxmeter.server.runtime import Runtime
from voxmeter.services.metrics import REFUSALS

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/jsonlines"})
JSON_TYPES = frozenset({"application/json", ""})
MAX_LISTING = 1000

# JSON numbers with a fraction or an exponent are read as Decimal from their
# literal text: a quantity of 3.75 is exact, with no binary float in between.
_decode = msgspec.json.Decoder(float_hook=Decimal)


class _Upload:
    """``async with _Upload(runtime, principal) as upload``: what an upload may hold.

    Taken before the body is read, so that nothing can make a worker hold
    more than these at once:

    * the token's upload slot: the simultaneous-call limit, applied in this
      worker before the body is read (the call is admitted, counting quota
      and taking the store's slot, only once the body has proved valid, so a
      refusal here counts nothing);
    * body bytes: the worker's budget for bodies under way, reserved as the
      body is declared or arrives, released when the call ends (503 past it).
    """

    __slots__ = ("_reserved", "_runtime", "_token_id")

    def __init__(self, runtime: Runtime, principal: Principal) -> None:
        self._runtime = runtime
        self._token_id = principal.token.id
        self._reserved = 0

    async def __aenter__(self) -> _Upload:
        settings, uploads = self._runtime.settings, self._runtime.uploads
        limit, held = settings.concurrency_per_token, uploads.get(self._token_id, 0)
        if settings.enforce_limits and held >= limit:
            REFUSALS.labels("concurrency").inc()
            raise errors.ApiError(
                403,
                errors.SIMULTANEOUS_REQUESTS.format(limit=limit),
                headers={"Retry-After": "1"},
            )
        uploads[self._token_id] = held + 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        runtime = self._runtime
        runtime.upload_bytes -= self._reserved
        left = runtime.uploads[self._token_id] - 1
        if left:
            runtime.uploads[self._token_id] = left
        else:
            del runtime.uploads[self._token_id]

    def _reserve(self, size: int) -> None:
        """Hold ``size`` body bytes in total (more than held already), or refuse."""
        runtime = self._runtime
        more = size - self._reserved
        if more <= 0:
            return
        if runtime.upload_bytes + more > runtime.settings.max_upload_bytes_in_flight:
            REFUSALS.labels("uploads").inc()
            raise errors.ApiError(503, errors.UPLOADS_BUSY, headers={"Retry-After": "1"})
        runtime.upload_bytes += more
        self._reserved = size

    async def body(self, request: Request, ndjson: bool) -> bytearray:
        """The request body, refused as soon as it grows past a bound.

        The bounds are counted on the bytes as they arrive, so a refused body
        is never held whole nor decoded: its size; its JSON values (every
        value but the first follows a comma or opens an object or array, so
        their count bounds the objects decoding would build); for NDJSON, its
        lines.
        """
        settings = self._runtime.settings
        limit, max_values = settings.max_body_bytes, settings.max_body_values
        too_large = errors.ApiError(413, errors.BODY_TOO_LARGE.format(limit=limit))
        declared = request.headers.get("content-length", "")
        if declared.isdigit():
            if int(declared) > limit:
                raise too_large
            self._reserve(int(declared))
        # Blank NDJSON lines are skipped, so as many of them as events are allowed.
        max_lines = 2 * settings.max_batch_events + 1
        body, values, lines = bytearray(), 0, 0
        async for chunk in request.stream():
            if len(body) + len(chunk) > limit:
                raise too_large
            self._reserve(len(body) + len(chunk))
            values += chunk.count(b",") + chunk.count(b"{") + chunk.count(b"[")
            if values > max_values:
                raise errors.ApiError(413, errors.BODY_TOO_COMPLEX.format(limit=max_values))
            if ndjson:
                lines += chunk.count(b"\n")
                if lines > max_lines:
                    raise errors.ApiError(
                        413, errors.UPLOAD_TOO_LARGE.format(limit=settings.max_batch_events)
                    )
            body += chunk
        return body

    async def items(self, request: Request, key: str) -> list[object]:
        """The objects under ``key`` in a JSON body, or one per NDJSON line."""
        ndjson = _is_ndjson(request)
        body = await self.body(request, ndjson)
        return _items(body, ndjson, key, self._runtime.settings.max_batch_events)


def _is_ndjson(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in NDJSON_TYPES:
        return True
    if media in JSON_TYPES:
        return False
    raise errors.ApiError(415, errors.UNSUPPORTED_CONTENT)


# What a hostile body can make the decoder raise: malformed JSON, nesting
# past the decoder's depth, invalid UTF-8 inside a string.
_MALFORMED = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "JSON is nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {exc.start} of a string"
    return str(exc)


def _json(body: bytearray) -> Any:
    try:
        return _decode.decode(body)
    except _MALFORMED as exc:
        raise errors.ApiError(400, errors.BODY_NOT_JSON, [{"reason": _reason(exc)}]) from None


def _items(body: bytearray, ndjson: bool, key: str, limit: int) -> list[object]:
    """The objects under ``key`` (or one per NDJSON line); :func:`_body` bounded their count."""
    too_many = errors.ApiError(413, errors.UPLOAD_TOO_LARGE.format(limit=limit))
    if ndjson:
        lines = [(number, line) for number, line in enumerate(body.split(b"\n"), 1) if line.strip()]
        if len(lines) > limit:
            raise too_many
        items: list[object] = []
        for index, (number, line) in enumerate(lines):
            try:
                items.append(_decode.decode(line))
            except _MALFORMED as exc:
                where = {"index": index, "line": number, "reason": _reason(exc)}
                raise errors.ApiError(400, errors.BODY_NOT_JSON, [where]) from None
        return items
    document = _json(body)
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise errors.ApiError(
            400, errors.PARAMETERS_REQUIRED, [{"parameter": key, "reason": "a JSON list"}]
        )
    if len(document[key]) > limit:
        raise too_many
    result: list[object] = document[key]
    return result


async def post_events(request: Request) -> Response:
    runtime, principal = await authenticate(request, TokenScope.INGEST)
    async with _Upload(runtime, principal) as upload:
        raws = await upload.items(request, "events")
        return await _record(runtime, principal, raws, request)


async def _record(
    runtime: Runtime, principal: Principal, raws: list[object], request: Request
) -> Response:
    usage = runtime.services.usage
    now = runtime.clock()
    events, rejected = usage.check(principal.operation, raws, now)
    async with LimitedCall(runtime, principal, request.receive) as call:
        if rejected:
            # Admitted first: an invalid batch costs its caller one call
            # before it takes room in the rejection log.
            raise await usage.refuse_invalid(principal.operation, rejected, now, raws)
        outcome = await usage.store(principal.operation, events, now)
        summary = {
            "received": len(events),
            "accepted": len(outcome.accepted),
            "duplicates": len(outcome.duplicates),
            "duplicate_indexes": outcome.duplicates,
        }
        return responses.success(
            CodeType.NUMBER, messages.EVENTS_RECORDED, [summary], headers=call.headers
        )


async def post_corrections(request: Request) -> Response:
    runtime, principal = await authenticate(request, TokenScope.INGEST)
    async with _Upload(runtime, principal) as upload:
        raws = await upload.items(request, "corrections")
        return await _correct(runtime, principal, raws, request)


async def _correct(
    runtime: Runtime, principal: Principal, raws: list[object], request: Request
) -> Response:
    usage = runtime.services.usage
    corrections = await usage.plan_corrections(principal.operation, raws)
    async with LimitedCall(runtime, principal, request.receive) as call:
        results = await usage.apply_corrections(principal.operation, corrections)
        summary = {
            "applied": results.count(CorrectionResult.APPLIED),
            "unchanged": results.count(CorrectionResult.UNCHANGED),
            "results": [r.value for r in results],
        }
        return responses.success(
            CodeType.NUMBER, messages.CORRECTIONS_APPLIED, [summary], headers=call.headers
        )


def _entry(entry: LedgerEntry) -> dict[str, Any]:
    meter = billing_meter(entry.meter)
    scale = meter.kind.scale if meter else 0
    return {
        "id": entry.event_id,
        "meter": entry.meter,
        "quantity": format_items(entry.quantity, scale),
        "counted": None
        if entry.effective_quantity is None
        else format_items(entry.effective_quantity, scale),
        "state": entry.state,
        "time": entry.occurred_at.isoformat(),
        "received_at": entry.received_at.isoformat(),
    }


async def list_events(request: Request) -> Response:
    runtime, principal = await authenticate(request, TokenScope.INGEST)
    query = parse_query(request.scope["query_string"], runtime.settings.max_query_parameters)
    view = params.optional(query, "view") or "accepted"
    if view not in ("accepted", "rejected"):
        raise errors.invalid_parameter("view", "'accepted' or 'rejected'")
    raw_limit = params.optional(query, "limit") or "100"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LISTING:
        raise errors.invalid_parameter("limit", f"a whole number from 1 to {MAX_LISTING}")
    usage, operation, limit = runtime.services.usage, principal.operation, int(raw_limit)
    async with LimitedCall(runtime, principal, request.receive) as call:
        if view == "accepted":
            rows = [_entry(e) for e in await usage.events(operation, limit)]
        else:
            rows = [
                {
                    "index": r.index,
                    "id": r.event_id,
                    "reason": r.reason,
                    "received_at": r.received_at.isoformat(),
                }
                for r in await usage.rejections(operation, limit)
            ]
        msg = messages.RECORDS_FOUND.format(count=len(rows))
        return responses.success(CodeType.NUMBER, msg, rows, headers=call.headers)
