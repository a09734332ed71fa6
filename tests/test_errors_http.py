"""Every refusal: the platform's status and message, in the envelope, changing nothing."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import FakeClock, RunningServer, add_operation, add_token, snapshot
from ledger_helpers import record
from voxmeter.domain import tokens
from voxmeter.domain.models import TokenScope
from voxmeter.storage.base import Store

BILLING = "/api/v2/billing.php"
INFORMATION = "/api/v2/information.php"


def assert_envelope(response: Any, status: int, msg: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["code", "error", "msg", "data"]
    assert body["code"] == status
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["msg"] == msg
    assert isinstance(body["data"], list)


@pytest.fixture
async def world(store: Store, clock: FakeClock) -> dict[str, Any]:
    operation = await add_operation(store, clock)
    await record(store, operation, clock(), ("ivr_calls", 3, "2026-11-02T12:00:00Z"))
    report = await add_token(store, clock, operation)
    ingest = await add_token(store, clock, operation, TokenScope.INGEST)
    revoked = await add_token(store, clock, operation)
    revoked_id = tokens.token_id_of(revoked)
    assert revoked_id is not None
    assert await store.revoke_token(revoked_id, clock())
    return {"report": report, "ingest": ingest, "revoked": revoked}


CASES = [
    # (path, params, token key or literal, status, msg)
    (BILLING, {"api": "ivr_calls"}, None, 401, "PLEASE ENTER THE WOLKVOX-TOKEN"),
    (INFORMATION, {"api": "services"}, None, 401, "PLEASE ENTER THE WOLKVOX-TOKEN"),
    (BILLING, {"api": "ivr_calls"}, "", 401, "PLEASE ENTER THE WOLKVOX-TOKEN"),
    (BILLING, {"api": "ivr_calls"}, "not-a-token", 403, "PLEASE VALIDATE TOKEN"),
    (
        BILLING,
        {"api": "ivr_calls"},
        "vxm_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        403,
        "PLEASE VALIDATE TOKEN",
    ),
    (INFORMATION, {"api": "services"}, "revoked", 403, "PLEASE VALIDATE TOKEN"),
    (BILLING, {"api": "ivr_calls"}, "ingest", 403, "THIS TOKEN IS NOT ALLOWED TO USE THIS API"),
    (BILLING, {}, "report", 400, "SOME PARAMETERS ARE REQUIRED"),
    (BILLING, {"api": ""}, "report", 400, "SOME PARAMETERS ARE REQUIRED"),
    (INFORMATION, {}, "report", 400, "SOME PARAMETERS ARE REQUIRED"),
    (BILLING, {"api": "nope"}, "report", 400, "THE API YOU WANT TO CONSULT DOES NOT EXIST"),
    (BILLING, {"api": "services"}, "report", 400, "THE API YOU WANT TO CONSULT DOES NOT EXIST"),
    (
        INFORMATION,
        {"api": "ivr_calls"},
        "report",
        400,
        "THE API YOU WANT TO CONSULT DOES NOT EXIST",
    ),
    (BILLING, {"api": "IVR_CALLS"}, "report", 400, "THE API YOU WANT TO CONSULT DOES NOT EXIST"),
    (BILLING, [("api", "ivr_calls"), ("api", "interactions")], "report", 400, "INVALID PARAMETERS"),
    (
        "/api/v2/nothing.php",
        {"api": "services"},
        "report",
        404,
        "THE RESOURCE YOU REQUESTED DOES NOT EXIST",
    ),
]


@pytest.mark.parametrize(("path", "params", "who", "status", "msg"), CASES)
async def test_refusals(
    server: RunningServer,
    store: Store,
    clock: FakeClock,
    world: dict[str, Any],
    path: str,
    params: Any,
    who: str | None,
    status: int,
    msg: str,
):
    before = await snapshot(store, clock())
    secret = world.get(who, who) if who is not None else None
    with server.client() as http:
        headers = {} if secret is None else {"wolkvox-token": secret}
        response = http.get(path, params=params, headers=headers)
    assert_envelope(response, status, msg)
    assert await snapshot(store, clock()) == before


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_wrong_method(
    server: RunningServer, store: Store, clock: FakeClock, world: dict[str, Any], method: str
):
    before = await snapshot(store, clock())
    with server.client(world["report"]) as http:
        response = http.request(method, BILLING, params={"api": "ivr_calls"})
    assert_envelope(response, 405, "METHOD NOT ALLOWED")
    assert "GET" in response.headers["allow"]
    assert await snapshot(store, clock()) == before


async def test_repeating_the_same_api_value_is_tolerated(
    server: RunningServer, world: dict[str, Any]
):
    with server.client(world["report"]) as http:
        response = http.get(BILLING, params=[("api", "ivr_calls"), ("api", "ivr_calls")])
    assert response.status_code == 200
    assert response.json()["data"][0]["items"] == "3"


async def test_a_fault_on_the_report_path_is_answered_in_the_envelope(
    server: RunningServer,
    store: Store,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    from voxmeter.services.reports import ReportService

    async def broken(*args: Any) -> str:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(ReportService, "figure", broken)
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        answers = [http.get(BILLING, params={"api": "ivr_calls"}) for _ in range(3)]
    assert_envelope(answers[0], 500, "AN INTERNAL ERROR OCCURRED")
    # Not 403 for simultaneous calls: each failed call gave its slot back.
    assert [a.status_code for a in answers] == [500, 500, 500]
    assert "the disk is on fire" in caplog.text
