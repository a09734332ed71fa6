"""POST /api/v2/events and its companions, over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from conftest import FakeClock, RunningServer, add_operation, add_token, snapshot
from voxmeter.domain.models import TokenScope
from voxmeter.storage.base import Store

EVENTS = "/api/v2/events"
CORRECTIONS = "/api/v2/events/corrections"
BILLING = "/api/v2/billing.php"


def event(event_id: str, meter: str = "ivr_calls", quantity: Any = 1, time: str = "") -> dict:
    return {
        "id": event_id,
        "meter": meter,
        "quantity": quantity,
        "time": time or "2026-11-20T10:00:00-05:00",
    }


@pytest.fixture
async def tokens_(store: Store, clock: FakeClock) -> dict[str, str]:
    operation = await add_operation(store, clock)
    return {
        "ingest": await add_token(store, clock, operation, TokenScope.INGEST),
        "report": await add_token(store, clock, operation),
    }


def figure(server: RunningServer, secret: str, api: str = "ivr_calls") -> str:
    with server.client(secret) as http:
        return http.get(BILLING, params={"api": api}).json()["data"][0]["items"]


async def test_a_batch_counts_once_however_often_it_is_sent(
    server: RunningServer, tokens_: dict[str, str]
):
    batch = {
        "events": [event("a", quantity=2), event("b", quantity=3), event("c", "stereo_rec", "1.25")]
    }
    with server.client(tokens_["ingest"]) as http:
        first = http.post(EVENTS, json=batch)
        again = http.post(EVENTS, json=batch)
    assert first.status_code == 200
    assert first.json() == {
        "code": 200,
        "error": None,
        "msg": "EVENTS RECORDED",
        "data": [{"received": 3, "accepted": 3, "duplicates": 0, "duplicate_indexes": []}],
    }
    assert again.json()["data"] == [
        {"received": 3, "accepted": 0, "duplicates": 3, "duplicate_indexes": [0, 1, 2]}
    ]
    assert figure(server, tokens_["report"]) == "5"
    assert figure(server, tokens_["report"], "stereo_rec") == "1.25"


async def test_ndjson_bodies_are_accepted(server: RunningServer, tokens_: dict[str, str]):
    # Blank lines (and CRLF endings) are skipped.
    body = b"\r\n\r\n".join(orjson.dumps(event(f"n{i}", quantity=i)) for i in range(1, 5)) + b"\n"
    with server.client(tokens_["ingest"]) as http:
        response = http.post(EVENTS, content=body, headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 200
    assert response.json()["data"][0]["accepted"] == 4
    assert figure(server, tokens_["report"]) == "10"


async def test_an_invalid_batch_is_refused_whole_and_explained(
    server: RunningServer, store: Store, clock: FakeClock, tokens_: dict[str, str]
):
    before = await snapshot(store, clock())
    batch = {
        "events": [
            event("ok-1"),
            event("bad-meter", meter="fax_pages"),
            event("bad-qty", quantity="1.5"),
            event("neg", quantity=-1),
            event("naive", time="2026-11-20T10:00:00"),
            event("old", time="2026-10-01T10:00:00Z"),
            event("future", time="2026-11-25T10:00:00Z"),
            {"id": "", "meter": "ivr_calls", "quantity": 1, "time": "2026-11-20T10:00:00Z"},
            {
                "id": "extra",
                "meter": "ivr_calls",
                "quantity": 1,
                "time": "2026-11-20T10:00:00Z",
                "x": 1,
            },
            "not an object",
        ]
    }
    with server.client(tokens_["ingest"]) as http:
        response = http.post(EVENTS, json=batch)
        after = await snapshot(store, clock())
        rejected = http.get(EVENTS, params={"view": "rejected"}).json()
    # Nothing stored; logging the refusal cost the caller one call (docs/limits.md).
    stored = {name: (operation, figures) for name, (operation, _, figures) in after.items()}
    assert stored == {name: (op, figures) for name, (op, _, figures) in before.items()}
    assert response.status_code == 400
    body = response.json()
    assert body["msg"] == "SOME EVENTS ARE INVALID"
    reasons = {item["index"]: item["reason"] for item in body["data"]}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert reasons[1] == "unknown meter 'fax_pages'"
    assert reasons[2] == "quantity must be a whole number"
    assert "negative" in reasons[3]
    assert "explicit UTC offset" in reasons[4]
    assert "before the operation's open month" in reasons[5]
    assert reasons[6] == "time is in the future"
    assert "non-empty" in reasons[7]
    assert "unknown field(s): x" in reasons[8]
    assert reasons[9] == "event must be a JSON object"
    assert len(rejected["data"]) == 9
    assert {r["id"] for r in rejected["data"]} >= {"bad-meter", "old", "future"}


async def test_reusing_an_id_for_another_payload_stores_nothing_of_the_batch(
    server: RunningServer, store: Store, clock: FakeClock, tokens_: dict[str, str]
):
    with server.client(tokens_["ingest"]) as http:
        assert http.post(EVENTS, json={"events": [event("a", quantity=2)]}).status_code == 200
        before = await snapshot(store, clock())
        response = http.post(
            EVENTS, json={"events": [event("fresh", quantity=7), event("a", quantity=3)]}
        )
    assert response.status_code == 409
    assert response.json()["msg"] == "SOME EVENT IDS WERE ALREADY USED FOR DIFFERENT EVENTS"
    assert response.json()["data"] == [
        {"index": 1, "id": "a", "reason": "id already used for a different event"}
    ]
    assert await snapshot(store, clock()) == before
    assert figure(server, tokens_["report"]) == "2"


async def test_a_batch_that_conflicts_with_itself_is_refused(
    server: RunningServer, tokens_: dict[str, str]
):
    with server.client(tokens_["ingest"]) as http:
        response = http.post(
            EVENTS, json={"events": [event("x", quantity=1), event("x", quantity=2)]}
        )
    assert response.status_code == 409
    assert figure(server, tokens_["report"]) == "0"


@pytest.mark.parametrize(
    ("settings_overrides", "content", "headers", "status", "msg"),
    [
        (
            {"max_batch_events": 3},
            orjson.dumps({"events": [event(str(i)) for i in range(4)]}),
            {},
            413,
            "THE UPLOAD EXCEEDS THE LIMIT OF 3 RECORDS",
        ),
        (
            {"max_batch_events": 3},
            b"\n".join(orjson.dumps(event(str(i))) for i in range(4)),
            {"content-type": "application/x-ndjson"},
            413,
            "THE UPLOAD EXCEEDS THE LIMIT OF 3 RECORDS",
        ),
        (
            {"max_batch_events": 3},
            b"\n" * 8 + orjson.dumps(event("a")),
            {"content-type": "application/x-ndjson"},
            413,
            "THE UPLOAD EXCEEDS THE LIMIT OF 3 RECORDS",
        ),
        (
            {"max_body_bytes": 100},
            orjson.dumps({"events": [event(str(i)) for i in range(4)]}),
            {},
            413,
            "THE BODY EXCEEDS THE LIMIT OF 100 BYTES",
        ),
        (
            {},
            b"id,meter",
            {"content-type": "text/csv"},
            415,
            "THE CONTENT TYPE MUST BE application/json OR application/x-ndjson",
        ),
        ({}, b'{"events": [', {}, 400, "THE BODY IS NOT VALID JSON"),
        ({}, b'{"things": []}', {}, 400, "SOME PARAMETERS ARE REQUIRED"),
        ({}, b"[]", {}, 400, "SOME PARAMETERS ARE REQUIRED"),
    ],
    ids=[
        "too-many",
        "too-many-ndjson",
        "ndjson-blank-lines",
        "body-too-large",
        "csv",
        "broken-json",
        "no-events",
        "not-object",
    ],
)
async def test_malformed_uploads_are_refused_and_change_nothing(
    server: RunningServer,
    store: Store,
    clock: FakeClock,
    tokens_: dict[str, str],
    content: bytes,
    headers: dict[str, str],
    status: int,
    msg: str,
):
    before = await snapshot(store, clock())
    with server.client(tokens_["ingest"]) as http:
        response = http.post(
            EVENTS, content=content, headers={"content-type": "application/json", **headers}
        )
    assert response.status_code == status
    assert response.json()["msg"] == msg
    assert await snapshot(store, clock()) == before


@pytest.mark.parametrize("settings_overrides", [{"max_body_bytes": 10_000}])
async def test_a_body_streamed_past_the_cap_is_cut_off(
    server: RunningServer, tokens_: dict[str, str]
):
    def chunks():
        yield b'{"events": ['
        for _ in range(4000):
            yield orjson.dumps(event("same")) + b","
        yield b"]}"

    with server.client(tokens_["ingest"]) as http:
        response = http.post(EVENTS, content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["msg"] == "THE BODY EXCEEDS THE LIMIT OF 10000 BYTES"


async def test_scopes_keep_reading_and_writing_apart(
    server: RunningServer, tokens_: dict[str, str]
):
    with server.client(tokens_["report"]) as http:
        response = http.post(EVENTS, json={"events": [event("a")]})
    assert response.status_code == 403
    assert response.json()["msg"] == "THIS TOKEN IS NOT ALLOWED TO USE THIS API"
    with server.client() as http:
        assert http.post(EVENTS, json={"events": []}).status_code == 401


@pytest.mark.parametrize("settings_overrides", [{"concurrency_per_token": 16}])
async def test_concurrent_retries_of_one_batch_count_it_once(
    server: RunningServer, tokens_: dict[str, str]
):
    batch = {"events": [event(f"e{i}", quantity=1) for i in range(500)]}
    headers = {"wolkvox-token": tokens_["ingest"]}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as http:
        answers = await asyncio.gather(*(http.post(EVENTS, json=batch) for _ in range(8)))
    assert {a.status_code for a in answers} == {200}
    assert sum(a.json()["data"][0]["accepted"] for a in answers) == 500
    assert figure(server, tokens_["report"]) == "500"


async def test_the_previous_month_is_open_during_the_grace_period(
    server: RunningServer, clock: FakeClock, tokens_: dict[str, str]
):
    from datetime import UTC, datetime

    clock.now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 on 1 Dec in Bogota
    with server.client(tokens_["ingest"]) as http:
        late = http.post(EVENTS, json={"events": [event("late", time="2026-11-30T23:00:00-05:00")]})
        too_late = http.post(
            EVENTS, json={"events": [event("too-late", time="2026-11-28T23:00:00-05:00")]}
        )
    assert late.status_code == 200
    assert too_late.status_code == 400
    assert figure(server, tokens_["report"]) == "0"  # November's call is not December's


async def test_corrections_void_and_amend_with_the_reports_following(
    server: RunningServer, store: Store, clock: FakeClock, tokens_: dict[str, str]
):
    batch = {
        "events": [
            event("a", quantity=5),
            event("b", quantity=7),
            event("g1", "chat_licenses", 10, "2026-11-10T10:00:00Z"),
            event("g2", "chat_licenses", 14, "2026-11-10T12:00:00Z"),
        ]
    }
    corrections = {
        "corrections": [
            {"id": "a", "action": "void", "reason": "test call"},
            {"id": "b", "action": "amend", "quantity": 4},
            {"id": "g2", "action": "void"},
        ]
    }
    with server.client(tokens_["ingest"]) as http:
        http.post(EVENTS, json=batch)
        applied = http.post(CORRECTIONS, json=corrections)
        retried = http.post(CORRECTIONS, json=corrections)
        listing = http.get(EVENTS, params={"limit": "10"}).json()
    assert applied.status_code == 200
    assert applied.json()["data"] == [
        {"applied": 3, "unchanged": 0, "results": ["applied", "applied", "applied"]}
    ]
    assert retried.json()["data"][0]["unchanged"] == 3
    assert figure(server, tokens_["report"]) == "4"
    assert figure(server, tokens_["report"], "chat_licenses") == "10"
    states = {row["id"]: (row["state"], row["quantity"], row["counted"]) for row in listing["data"]}
    assert states == {
        "a": ("voided", "5", None),
        "b": ("amended", "7", "4"),
        "g1": ("counted", "10", "10"),
        "g2": ("voided", "14", None),
    }
    with server.client(tokens_["ingest"]) as http:
        back = http.post(
            CORRECTIONS, json={"corrections": [{"id": "a", "action": "amend", "quantity": 5}]}
        )
    assert back.status_code == 200
    assert figure(server, tokens_["report"]) == "9"


async def test_corrections_of_unknown_events_apply_nothing(
    server: RunningServer, store: Store, clock: FakeClock, tokens_: dict[str, str]
):
    with server.client(tokens_["ingest"]) as http:
        http.post(EVENTS, json={"events": [event("a", quantity=5)]})
        before = await snapshot(store, clock())
        response = http.post(
            CORRECTIONS,
            json={
                "corrections": [{"id": "a", "action": "void"}, {"id": "ghost", "action": "void"}]
            },
        )
        bad = http.post(
            CORRECTIONS, json={"corrections": [{"id": "a", "action": "amend", "quantity": "0.5"}]}
        )
        odd = http.post(CORRECTIONS, json={"corrections": [{"id": "a", "action": "erase"}]})
    assert response.status_code == 404
    assert response.json()["data"] == [{"index": 1, "id": "ghost"}]
    assert bad.status_code == 400
    assert odd.status_code == 400
    assert await snapshot(store, clock()) == before
