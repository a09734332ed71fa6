"""``/api/v2/events``: usage in (batches, corrections) and the operator's view of it.

Every batch is all or nothing: it is refused whole when any event is
invalid or reuses an id for a different payload, and then nothing is stored.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from voxmeter.contract import errors
from voxmeter.contract.meters import CodeType, billing_meter
from voxmeter.contract.quantities import format_items
from voxmeter.metering.models import CorrectionResult, LedgerEntry, Principal, Rejection, Scope
from voxmeter.metering.usage import (
    EventError,
    Window,
    parse_correction,
    scaled_correction,
    validate_batch,
)
from voxmeter.server import params, responses
from voxmeter.server.asgi import parse_query
from voxmeter.server.auth import authenticate, presented_token
from voxmeter.server.limits import limited
from voxmeter.server.observability import EVENTS
from voxmeter.server.runtime import Runtime, runtime_of

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/jsonlines"})
JSON_TYPES = frozenset({"application/json", ""})
MAX_LISTING = 1000

_decode = msgspec.json.Decoder()


async def _principal(request: Request) -> tuple[Runtime, Principal]:
    runtime = runtime_of(request)
    principal = await authenticate(runtime, presented_token(request), Scope.INGEST)
    return runtime, principal


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it grows past ``limit`` bytes."""
    too_large = errors.ApiError(413, errors.BODY_TOO_LARGE.format(limit=limit))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _is_ndjson(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in NDJSON_TYPES:
        return True
    if media in JSON_TYPES:
        return False
    raise errors.ApiError(415, errors.UNSUPPORTED_CONTENT)


def _json(body: bytes) -> Any:
    try:
        return _decode.decode(body)
    except msgspec.DecodeError as exc:
        raise errors.ApiError(400, errors.BODY_NOT_JSON, [{"reason": str(exc)}]) from None


def _items(body: bytes, ndjson: bool, key: str, limit: int) -> list[object]:
    """The objects under ``key`` (or one per NDJSON line), counted before they are read."""
    too_many = errors.ApiError(413, errors.UPLOAD_TOO_LARGE.format(limit=limit))
    if ndjson:
        # Splitting a body of mostly newlines would build millions of empty
        # lines before the count below; blank lines are skipped, so allow as
        # many of them as events, and refuse beyond without splitting.
        if body.count(b"\n") > 2 * limit + 1:
            raise too_many
        lines = [line for line in body.split(b"\n") if line.strip()]
        if len(lines) > limit:
            raise too_many
        items: list[object] = []
        for index, line in enumerate(lines):
            try:
                items.append(_decode.decode(line))
            except msgspec.DecodeError as exc:
                raise errors.ApiError(
                    400, errors.BODY_NOT_JSON, [{"index": index, "reason": str(exc)}]
                ) from None
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


async def _refuse(
    runtime: Runtime, principal: Principal, status: int, msg: str, rejected: list[Rejection]
) -> errors.ApiError:
    """Log why the events did not count, and the refusal that says so."""
    EVENTS.labels("rejected").inc(len(rejected))
    await runtime.store.log_rejections(principal.operation.id, rejected, runtime.clock())
    return errors.ApiError(
        status, msg, [{"index": r.index, "id": r.event_id, "reason": r.reason} for r in rejected]
    )


async def post_events(request: Request) -> Response:
    runtime, principal = await _principal(request)
    settings = runtime.settings
    ndjson = _is_ndjson(request)
    raws = _items(
        await _body(request, settings.max_body_bytes), ndjson, "events", settings.max_events_up
    )
    operation = principal.operation
    now = runtime.clock()
    events, rejected = validate_batch(raws, operation, Window.open_month(operation, now, settings))
    if rejected:
        raise await _refuse(runtime, principal, 400, errors.EVENTS_INVALID, rejected)
    async with limited(runtime, principal) as call:
        outcome = await runtime.store.record_events(operation.id, events, now)
        if outcome.conflicts:
            conflicts = [
                Rejection(i, events[i].event_id, "id already used for a different event")
                for i in outcome.conflicts
            ]
            raise await _refuse(runtime, principal, 409, errors.EVENT_ID_CONFLICT, conflicts)
        EVENTS.labels("accepted").inc(len(outcome.accepted))
        EVENTS.labels("duplicate").inc(len(outcome.duplicates))
        summary = {
            "received": len(events),
            "accepted": len(outcome.accepted),
            "duplicates": len(outcome.duplicates),
            "duplicate_indexes": outcome.duplicates,
        }
        return responses.success(
            CodeType.NUMBER, errors.EVENTS_RECORDED, [summary], headers=call.headers
        )


async def post_corrections(request: Request) -> Response:
    runtime, principal = await _principal(request)
    settings = runtime.settings
    raws = _items(
        await _body(request, settings.max_body_bytes),
        _is_ndjson(request),
        "corrections",
        settings.max_events_up,
    )
    asked, invalid = [], []
    for index, raw in enumerate(raws):
        try:
            asked.append(parse_correction(raw))
        except EventError as exc:
            invalid.append({"index": index, "reason": str(exc)})
    if invalid:
        raise errors.ApiError(400, errors.EVENTS_INVALID, invalid)
    store, operation = runtime.store, principal.operation
    meters = await store.event_meters(operation.id, [a.event_id for a in asked])
    unknown = [
        {"index": i, "id": a.event_id} for i, a in enumerate(asked) if a.event_id not in meters
    ]
    if unknown:
        raise errors.ApiError(404, errors.EVENTS_UNKNOWN, unknown)
    corrections = []
    for index, request_ in enumerate(asked):
        try:
            corrections.append(scaled_correction(request_, meters[request_.event_id]))
        except EventError as exc:
            invalid.append({"index": index, "id": request_.event_id, "reason": str(exc)})
    if invalid:
        raise errors.ApiError(400, errors.EVENTS_INVALID, invalid)
    async with limited(runtime, principal) as call:
        results = await store.correct_events(operation.id, corrections, runtime.clock())
        summary = {
            "applied": results.count(CorrectionResult.APPLIED),
            "unchanged": results.count(CorrectionResult.UNCHANGED),
            "results": [r.value for r in results],
        }
        return responses.success(
            CodeType.NUMBER, errors.CORRECTIONS_APPLIED, [summary], headers=call.headers
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
    runtime, principal = await _principal(request)
    query = parse_query(request.scope["query_string"])
    view = params.optional(query, "view") or "accepted"
    if view not in ("accepted", "rejected"):
        raise errors.invalid_parameter("view", "'accepted' or 'rejected'")
    raw_limit = params.optional(query, "limit") or "100"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LISTING:
        raise errors.invalid_parameter("limit", f"a whole number from 1 to {MAX_LISTING}")
    store, operation_id, limit = runtime.store, principal.operation.id, int(raw_limit)
    async with limited(runtime, principal) as call:
        if view == "accepted":
            rows = [_entry(e) for e in await store.recent_events(operation_id, limit)]
        else:
            rows = [
                {
                    "index": r.index,
                    "id": r.event_id,
                    "reason": r.reason,
                    "received_at": r.received_at.isoformat(),
                }
                for r in await store.recent_rejections(operation_id, limit)
            ]
        msg = errors.EVENTS_FOUND.format(count=len(rows))
        return responses.success(CodeType.NUMBER, msg, rows, headers=call.headers)
