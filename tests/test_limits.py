"""The documented limits: daily quota, simultaneous calls, time, ranges and caps."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from conftest import FakeClock, RunningServer, add_operation, add_token, snapshot
from ledger_helpers import record
from voxmeter.config import Settings
from voxmeter.domain import tokens
from voxmeter.domain.admission import Quota, Verdict
from voxmeter.storage.base import Store

BILLING = "/api/v2/billing.php"
INFORMATION = "/api/v2/information.php"
IVR = {"api": "ivr_calls"}
QUOTA_3 = {"calls_per_license": 3}


async def calls_of(store: Store, secret: str, clock: FakeClock) -> tuple[int, int]:
    token = await store.get_token(tokens.token_id_of(secret) or "")
    assert token is not None
    operations = {o.id: o for o in await store.list_operations()}
    day = operations[token.operation_id].local_date(clock())
    usage = await store.calls_today(token.id, token.operation_id, day)
    return usage.token_used, usage.operation_used


@pytest.mark.parametrize("settings_overrides", [QUOTA_3])
async def test_daily_quota_is_licenses_times_the_multiplier(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock, licenses=1)
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        answers = [http.get(BILLING, params=IVR) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 403]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {a.headers["x-ratelimit-limit"] for a in answers} == {"3"}
    refused = answers[-1]
    assert refused.json() == {
        "code": 403,
        "error": "FORBIDDEN",
        "msg": "TOKEN LIMIT EXCEEDED",
        "data": [],
    }
    # 15:00 UTC is 10:00 in Bogota: the quota resets at the next local midnight, 14 h on.
    midnight = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
    assert refused.headers["x-ratelimit-reset"] == str(int(midnight.timestamp()))
    assert refused.headers["retry-after"] == str(14 * 3600)
    assert await calls_of(store, secret, clock) == (3, 3)


@pytest.mark.parametrize("settings_overrides", [QUOTA_3])
async def test_the_operation_quota_binds_all_its_tokens_together(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock, licenses=1)
    first = await add_token(store, clock, operation)
    second = await add_token(store, clock, operation)
    other_operation = await add_operation(store, clock, name="Other", licenses=1)
    unrelated = await add_token(store, clock, other_operation)
    with server.client() as http:
        statuses = [
            http.get(BILLING, params=IVR, headers={"wolkvox-token": secret}).status_code
            for secret in (first, first, second, second, unrelated)
        ]
    assert statuses == [200, 200, 200, 403, 200]
    assert await calls_of(store, second, clock) == (1, 3)


@pytest.mark.parametrize("settings_overrides", [QUOTA_3])
async def test_quota_resets_at_the_operation_local_midnight(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock, licenses=1, timezone="America/Bogota")
    secret = await add_token(store, clock, operation)
    clock.now = datetime(2026, 11, 24, 23, 58, tzinfo=UTC)  # 18:58 in Bogota
    with server.client(secret) as http:
        for _ in range(3):
            assert http.get(BILLING, params=IVR).status_code == 200
        clock.now = datetime(2026, 11, 25, 0, 30, tzinfo=UTC)  # midnight in UTC only
        assert http.get(BILLING, params=IVR).status_code == 403
        clock.now = datetime(2026, 11, 25, 5, 0, 1, tzinfo=UTC)  # 00:00:01 in Bogota
        assert http.get(BILLING, params=IVR).status_code == 200
    assert await calls_of(store, secret, clock) == (1, 1)


async def test_token_info_tells_where_the_token_stands(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock, licenses=2)
    secret = await add_token(store, clock, operation)
    sibling = await add_token(store, clock, operation)
    with server.client() as http:
        http.get(BILLING, params=IVR, headers={"wolkvox-token": sibling})
        http.get(BILLING, params=IVR, headers={"wolkvox-token": secret})
        response = http.get(
            INFORMATION, params={"api": "token_info"}, headers={"wolkvox-token": secret}
        )
    assert response.status_code == 200
    assert response.json() == {
        "code": "200",
        "error": None,
        "msg": "1 records were found",
        "data": [
            {
                "description": "test",
                "token_limit": "2000",
                "token_use_today": "2",  # the token_info call counts itself
                "all_token_today": "3",
                "available_consumption_options": "1998",  # token_limit - token_use_today
            }
        ],
    }


async def test_bad_input_and_unknown_tokens_count_nothing(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        assert http.get(BILLING, params={"api": "nope"}).status_code == 400
        assert http.get(BILLING, params={**IVR, "detail": "hourly"}).status_code == 400
        assert http.get(BILLING, params={**IVR, "date_ini": "2026-10-30"}).status_code == 400
        assert http.get(BILLING, params={**IVR, "date_end": "24/11/2026"}).status_code == 400
    assert await calls_of(store, secret, clock) == (0, 0)


LATENT = {"simulated_latency_seconds": 0.6}


@pytest.mark.parametrize("settings_overrides", [LATENT])
async def test_a_third_simultaneous_call_is_refused_at_once(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    headers = {"wolkvox-token": secret}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
        answers = await asyncio.gather(*(http.get(BILLING, params=IVR) for _ in range(5)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 200, 403, 403, 403]
        refused = next(a for a in answers if a.status_code == 403)
        assert refused.json()["msg"] == "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"
        assert refused.headers["retry-after"] == "1"
        # The slots were released: two more simultaneous calls both run.
        again = await asyncio.gather(*(http.get(BILLING, params=IVR) for _ in range(2)))
        assert [a.status_code for a in again] == [200, 200]
    # Refused calls were not counted against the quota.
    assert await calls_of(store, secret, clock) == (4, 4)


@pytest.mark.parametrize(
    "settings_overrides", [{"simulated_latency_seconds": 1.0, "time_limit_seconds": 0.2}]
)
async def test_a_call_past_the_time_limit_is_cancelled_and_frees_its_slot(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        answers = [http.get(BILLING, params=IVR) for _ in range(3)]
    for answer in answers:  # a leaked slot would turn the third into a 403
        assert answer.status_code == 504
        assert answer.json()["msg"] == "THE API CONSUMPTION TIME LIMIT WAS EXCEEDED"
    assert await calls_of(store, secret, clock) == (3, 3)


async def test_a_store_that_arms_no_time_limit_answers_reports_without_waiting(
    store: Store, clock: FakeClock
):
    """What holds instead of the time limit where none is armed (SQLite).

    A time limit interrupts a call only where it waits. A store that says
    its calls do not wait (``calls_wait`` false) reads a report's figures
    without ever giving the event loop back, cached or not: nothing could
    interrupt those reads, and the range limit bounds them.
    """
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    await record(
        store, operation, clock(), ("ivr_calls", 3, clock()), ("chat_licenses", 2, clock())
    )
    credential = await store.find_credential(tokens.token_id_of(secret) or "")
    assert credential is not None
    day = clock().date()
    quota = Quota.for_call(operation, clock(), 1000)
    # An admission first, so that the figures are kept and read from the cache the second time.
    admission = await store.admit(
        credential.principal, quota, 2, clock() + timedelta(seconds=65), clock()
    )
    cached = (
        lambda: store.summed_total(operation.id, "ivr_calls", day.replace(day=1), day),
        lambda: store.gauge_value(operation.id, "chat_licenses", day),
    )
    uncached = (lambda: store.daily_rollups(operation.id, "ivr_calls", day.replace(day=1), day),)
    # First from the database, then (the figures) from the worker's cache.
    for read, may_wait in [*((r, True) for r in cached + uncached), *((r, False) for r in cached)]:
        loop_ran: list[bool] = []
        asyncio.get_running_loop().call_soon(loop_ran.append, True)
        await read()
        assert bool(loop_ran) is (may_wait and store.calls_wait)
    assert admission.slot is not None
    await store.release(credential.principal.token.id, admission.slot, admission.lease)


@pytest.mark.parametrize("settings_overrides", [LATENT])
async def test_a_client_that_hangs_up_frees_its_slot(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    headers = {"wolkvox-token": secret}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as impatient:
        for _ in range(2):
            with pytest.raises(httpx.ReadTimeout):
                await impatient.get(BILLING, params=IVR, timeout=0.1)
    await asyncio.sleep(0.8)  # the abandoned calls finish on the server
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
        answers = await asyncio.gather(*(http.get(BILLING, params=IVR) for _ in range(2)))
    assert [a.status_code for a in answers] == [200, 200]


HOLD_TWO_SLOTS = """
import asyncio, sys
from datetime import datetime, timedelta
from voxmeter.config import Settings
from voxmeter.domain.admission import Quota, Verdict
from voxmeter.storage import open_store

async def main(url, token_id, now):
    store = await open_store(url)
    principal = (await store.find_credential(token_id)).principal
    quota = Quota.for_call(principal.operation, now, Settings().calls_per_license)
    for _ in range(2):
        admission = await store.admit(principal, quota, 2, now + timedelta(seconds=65), now)
        assert admission.verdict is Verdict.ADMITTED
    print("held", flush=True)
    await asyncio.sleep(60)

asyncio.run(main(sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])))
"""


async def test_slots_held_by_a_worker_that_dies_are_freed(
    store: Store, clock: FakeClock, database_url: str
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    token_id = tokens.token_id_of(secret) or ""
    worker = subprocess.Popen(
        [sys.executable, "-c", HOLD_TWO_SLOTS, database_url, token_id, clock().isoformat()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "held"
        credential = await store.find_credential(token_id)
        assert credential is not None
        principal = credential.principal
        quota = Quota.for_call(operation, clock(), Settings().calls_per_license)
        lease_until = clock() + timedelta(seconds=65)
        refused = await store.admit(principal, quota, 2, lease_until, clock())
        assert refused.verdict is Verdict.TOO_MANY_IN_FLIGHT
    finally:
        worker.kill()  # dies holding its slots, never releasing them
        worker.wait()
    clock.advance(seconds=66)  # past any lease the dead worker took
    later = await store.admit(principal, quota, 2, clock() + timedelta(seconds=65), clock())
    assert later.verdict is Verdict.ADMITTED
    assert later.usage.token_used == 3


async def test_daily_detail_gives_one_row_per_day_so_far(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    await record(
        store, operation, clock(),
        ("ivr_calls", 4, "2026-11-02T12:00:00-05:00"),
        ("ivr_calls", 6, "2026-11-02T13:00:00-05:00"),
        ("ivr_calls", 1, "2026-11-24T08:00:00-05:00"),
        ("chat_licenses", 10, "2026-10-20T12:00:00Z", "oct"),
        ("chat_licenses", 12, "2026-11-03T12:00:00Z", "nov"),
    )  # fmt: skip
    with server.client(secret) as http:
        ivr = http.get(BILLING, params={**IVR, "detail": "daily"}).json()
        chat = http.get(BILLING, params={"api": "chat_licenses", "detail": "daily"}).json()
        plain = http.get(BILLING, params=IVR).json()
    assert len(ivr["data"]) == 24
    assert ivr["data"][0] == {
        "operation": "Acme BPO",
        "description": "IVR calls",
        "items": "0",
        "date": "2026-11-01",
    }
    assert [row["items"] for row in ivr["data"]][:3] == ["0", "10", "0"]
    assert ivr["data"][-1]["items"] == "1"
    assert [row["items"] for row in chat["data"]][:4] == ["10", "10", "12", "12"]
    assert chat["data"][-1]["items"] == "12"
    assert plain["data"][0]["items"] == "11"  # the default answer is unchanged


async def test_a_date_range_inside_the_month(server: RunningServer, store: Store, clock: FakeClock):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    await record(
        store, operation, clock(),
        ("ivr_calls", 4, "2026-11-02T12:00:00-05:00"),
        ("ivr_calls", 6, "2026-11-05T12:00:00-05:00"),
        ("ivr_calls", 1, "2026-11-24T08:00:00-05:00"),
    )  # fmt: skip
    with server.client(secret) as http:
        ranged = http.get(
            BILLING, params={**IVR, "date_ini": "2026-11-02", "date_end": "2026-11-05"}
        )
        daily = http.get(
            BILLING,
            params={**IVR, "date_ini": "2026-11-04", "date_end": "2026-11-05", "detail": "daily"},
        )
    assert ranged.json()["data"][0]["items"] == "10"
    assert ranged.json()["data"][0]["date"] == "2026-11-24"
    assert [(r["date"], r["items"]) for r in daily.json()["data"]] == [
        ("2026-11-04", "0"),
        ("2026-11-05", "6"),
    ]


CAP_CASES = [
    ({}, {"date_ini": "2026-10-25"}, "THE QUERY OF THIS API IS ONLY MADE IN THE CURRENT MONTH"),
    ({}, {"date_end": "2026-11-25"}, "THE QUERY OF THIS API IS ONLY MADE IN THE CURRENT MONTH"),
    ({}, {"date_ini": "2026-10-01", "date_end": "2026-11-24"}, "THE LIMIT OF DAYS QUERIED IS 31"),
    (
        {"max_range_days": 5},
        {"date_ini": "2026-11-01", "date_end": "2026-11-06"},
        "THE LIMIT OF DAYS QUERIED IS 5",
    ),
    ({"max_report_records": 20}, {"detail": "daily"}, "THE RESULT EXCEEDS THE LIMIT OF 20 RECORDS"),
    ({}, {"date_ini": "2026-11-05", "date_end": "2026-11-04"}, "INVALID PARAMETERS"),
]


@pytest.mark.parametrize(
    ("settings_overrides", "query", "msg"), CAP_CASES, ids=[c[2] for c in CAP_CASES]
)
async def test_range_and_record_caps_refuse_before_counting(
    server: RunningServer, store: Store, clock: FakeClock, query: dict[str, str], msg: str
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    before = await snapshot(store, clock())
    with server.client(secret) as http:
        response = http.get(BILLING, params={**IVR, **query})
    assert response.status_code == 400
    assert response.json()["msg"] == msg
    assert await snapshot(store, clock()) == before
    assert await calls_of(store, secret, clock) == (0, 0)


@pytest.mark.parametrize("settings_overrides", [{"max_result_bytes": 1024}])
async def test_result_weight_cap(server: RunningServer, store: Store, clock: FakeClock):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        small = http.get(BILLING, params=IVR)
        large = http.get(BILLING, params={**IVR, "detail": "daily"})
    assert small.status_code == 200
    assert large.status_code == 400
    assert large.json()["msg"] == "THE RESULT EXCEEDS THE LIMIT OF 0.000976562 MB"


@pytest.mark.parametrize("settings_overrides", [{"enforce_limits": False, **QUOTA_3}])
async def test_limits_can_be_switched_off(server: RunningServer, store: Store, clock: FakeClock):
    operation = await add_operation(store, clock, licenses=1)
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        answers = [http.get(BILLING, params=IVR) for _ in range(5)]
    assert {a.status_code for a in answers} == {200}
    assert "x-ratelimit-limit" not in answers[0].headers


@pytest.mark.parametrize("settings_overrides", [{"calls_per_license": 10**9}])
async def test_quotas_beyond_32_bits(server: RunningServer, store: Store, clock: FakeClock):
    operation = await add_operation(store, clock, licenses=3)
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        response = http.get(BILLING, params=IVR)
    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit"] == "3000000000"
