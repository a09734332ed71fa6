"""voxmeter.Client and AsyncClient against a real voxmeter server on loopback.

A transport-level fake appears only for what a real wolkvox server does that
voxmeter cannot reproduce (its host names, a proxy's 429, maintenance).
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest

import voxmeter
from conftest import FakeClock, RunningServer, add_operation, add_token
from ledger_helpers import record
from voxmeter.client import (
    AsyncClient,
    Client,
    InvalidTokenError,
    MaintenanceError,
    QuotaExceededError,
    SimultaneousRequestsError,
)
from voxmeter.client.errors import error_for
from voxmeter.contract.meters import BILLING_METERS
from voxmeter.storage.base import Store

SIMULTANEOUS = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN"


class CountingTransport(httpx.HTTPTransport):
    """A real transport that counts the requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return super().handle_request(request)


@pytest.fixture
async def secret(store: Store, clock: FakeClock) -> str:
    operation = await add_operation(
        store, clock, licenses=2, pbx=1, services=frozenset({"rsync", "video_call"})
    )
    await record(
        store, operation, clock(),
        ("ivr_calls", 12, "2026-11-03T10:00:00Z"),
        ("stereo_rec", "10.5", "2026-11-04T10:00:00Z"),
        ("nlp_ai", 3, "2026-11-05T10:00:00Z"),
    )  # fmt: skip
    return await add_token(store, clock, operation)


def test_typed_results_from_a_voxmeter_server(server: RunningServer, secret: str):
    with Client(secret, base_url=server.base_url) as client:
        calls = client.ivr_calls()
        minutes = client.stereo_rec()
        nlp = client.nlp_ai()
        services = client.services()
        daily = client.get("ivr_calls", detail="daily")
        raw = client.get_raw("stereo_rec")
    assert calls == voxmeter.client.Usage(
        api="ivr_calls", operation="Acme BPO", description="IVR calls", items=12,
        date=date(2026, 11, 24),
    )  # fmt: skip
    assert minutes.items == Decimal("10.5")
    assert nlp.date == date(2026, 11, 1)  # the month of the report
    assert (services.licenses, services.pbx, services.rsync, services.gamification) == (
        2, 1, True, False,
    )  # fmt: skip
    assert len(daily) == 24
    assert daily[2].items == 12
    assert raw.code == 200  # "200" on the wire for stereo_rec
    assert raw.msg == "Information found for the current month"


def test_every_catalogue_meter_has_a_method(server: RunningServer, secret: str):
    with Client(secret, base_url=server.base_url) as client:
        for meter in BILLING_METERS:
            assert getattr(client, meter.api)().api == meter.api


def test_token_info_and_token_from_the_environment(
    server: RunningServer, secret: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("WOLKVOX_TOKEN", secret)
    with Client(base_url=server.base_url) as client:
        client.ivr_calls()
        info = client.token_info()
    assert (info.token_limit, info.token_use_today, info.available) == (2000, 2, 1998)


def test_an_invalid_token_is_never_retried(server: RunningServer):
    transport = CountingTransport()
    with Client("vxm_000000000000_nope", base_url=server.base_url, transport=transport) as client:
        with pytest.raises(InvalidTokenError) as refused:
            client.ivr_calls()
    assert transport.sent == 1
    assert refused.value.status == 403
    assert refused.value.envelope["msg"] == "PLEASE VALIDATE TOKEN"


@pytest.mark.parametrize("settings_overrides", [{"calls_per_license": 1}])
def test_an_exhausted_quota_is_never_retried_and_says_when_it_resets(
    server: RunningServer, secret: str
):
    transport = CountingTransport()
    with Client(secret, base_url=server.base_url, transport=transport) as client:
        client.ivr_calls()
        client.ivr_calls()
        with pytest.raises(QuotaExceededError) as refused:
            client.ivr_calls()
    assert transport.sent == 3
    assert refused.value.resets_at == datetime(2026, 11, 25, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "settings_overrides", [{"concurrency_per_token": 1, "simulated_latency_seconds": 0.2}]
)
def test_calls_of_one_token_are_queued_not_refused(server: RunningServer, secret: str):
    """The server refuses a second simultaneous call; the client never sends one."""
    with Client(secret, base_url=server.base_url, max_retries=0) as client:
        with ThreadPoolExecutor(5) as pool:
            rows = list(pool.map(lambda _: client.ivr_calls(), range(5)))
        assert [row.items for row in rows] == [12] * 5


@pytest.mark.parametrize(
    "settings_overrides", [{"concurrency_per_token": 1, "simulated_latency_seconds": 0.2}]
)
async def test_async_calls_of_one_token_are_queued_not_refused(server: RunningServer, secret: str):
    async with AsyncClient(secret, base_url=server.base_url, max_retries=0) as client:
        rows = await asyncio.gather(*(client.ivr_calls() for _ in range(5)))
        other = AsyncClient(secret, base_url=server.base_url, max_retries=0)
        more = await asyncio.gather(client.stereo_rec(), other.interactions())  # shared slots
        await other.aclose()
    assert [row.items for row in rows] == [12] * 5
    assert more[0].items == Decimal("10.5")


@pytest.mark.parametrize(
    "settings_overrides", [{"concurrency_per_token": 1, "simulated_latency_seconds": 1.0}]
)
def test_a_simultaneous_request_refusal_is_retried_after_retry_after(
    server: RunningServer, secret: str
):
    """Another program holds the token's only slot; the client waits and retries."""
    pauses: list[float] = []
    blocker = threading.Thread(
        target=lambda: httpx.get(
            server.base_url + "/api/v2/billing.php?api=ivr_calls",
            headers={"wolkvox-token": secret},
            timeout=10,
        )
    )
    blocker.start()
    time.sleep(0.3)  # the blocker's call now holds the slot for the next 0.7 s

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        blocker.join()  # instead of really waiting: the slot is free once it is done

    with Client(secret, base_url=server.base_url, sleep=sleep) as client:
        row = client.ivr_calls()
    assert row.items == 12
    assert pauses == [1.0]  # the server's Retry-After


def test_the_cache_answers_for_five_minutes_then_refetches(server: RunningServer, secret: str):
    now = [1000.0]
    transport = CountingTransport()
    client = Client(
        secret, base_url=server.base_url, cache=True, clock=lambda: now[0], transport=transport
    )
    with client:
        first = client.ivr_calls()
        now[0] += 299
        again = client.ivr_calls()
        assert transport.sent == 1
        assert again == first
        client.stereo_rec()  # another api is another entry
        assert transport.sent == 2
        now[0] += 1
        client.ivr_calls()
        assert transport.sent == 3


def fake_wolkvox(responses: list[httpx.Response], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses.pop(0)

    return httpx.MockTransport(handle)


ROW = {"operation": "Op", "description": "IVR calls", "items": "7", "date": "2026-11-24"}


def test_the_url_is_built_from_the_server_id():
    seen: list[httpx.Request] = []
    ok = httpx.Response(200, json={"code": 200, "error": None, "msg": "ok", "data": [ROW]})
    with Client("t", server="24", transport=fake_wolkvox([ok], seen)) as client:
        assert client.ivr_calls().items == 7
    assert str(seen[0].url) == "https://wv0024.wolkvox.com/api/v2/billing.php?api=ivr_calls"
    assert seen[0].headers["wolkvox-token"] == "t"
    assert Client("t", server=9901).base_url == "https://wv9901.wolkvox.com"
    with pytest.raises(ValueError, match="four digits"):
        Client("t", server="wv9901")


def test_429_and_maintenance_are_retried_with_backoff():
    seen: list[httpx.Request] = []
    pauses: list[float] = []
    answers = [
        httpx.Response(429, headers={"Retry-After": "7"}, json={"msg": "slow down"}),
        httpx.Response(503, json={"code": 503, "msg": "MAINTENANCE"}),
        httpx.Response(200, json={"code": "200", "error": None, "msg": "ok", "data": [ROW]}),
    ]
    transport = fake_wolkvox(answers, seen)
    with Client("t", server="9901", transport=transport, sleep=pauses.append) as client:
        assert client.ivr_calls().items == 7
    assert len(seen) == 3
    assert pauses[0] == 7.0  # Retry-After honoured
    assert 0.25 <= pauses[1] <= 1.0  # exponential backoff with jitter: attempt 1 of 0.5 s base
    always_down = [httpx.Response(503, json={"msg": "MAINTENANCE"}) for _ in range(4)]
    transport = fake_wolkvox(always_down, seen)
    with Client("t", server="9901", transport=transport, sleep=lambda _: None) as client:
        with pytest.raises(MaintenanceError):
            client.ivr_calls()


@pytest.mark.parametrize(
    ("status", "msg", "cls"),
    [
        (
            403,
            "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)",
            SimultaneousRequestsError,
        ),
        (403, "TOKEN LIMIT EXCEEDED", QuotaExceededError),
        (403, "PLEASE VALIDATE TOKEN", InvalidTokenError),
        (400, "THE API YOU WANT TO CONSULT DOES NOT EXIST", voxmeter.client.UnknownApiError),
        (400, "SOME PARAMETERS ARE REQUIRED", voxmeter.client.MissingParameterError),
        (401, "PLEASE ENTER THE WOLKVOX-TOKEN", voxmeter.client.AuthenticationError),
        (504, "THE API CONSUMPTION TIME LIMIT WAS EXCEEDED", voxmeter.client.TimeLimitError),
        (500, "AN INTERNAL ERROR OCCURRED", voxmeter.client.ServerError),
    ],
)
def test_refusals_are_told_apart_by_message(status: int, msg: str, cls: type):
    error = error_for(status, {"code": status, "msg": msg, "data": []}, {})
    assert type(error) is cls
    assert error.envelope["msg"] == msg


def test_the_package_exposes_the_clients_lazily():
    assert voxmeter.Client is Client
    assert voxmeter.AsyncClient is AsyncClient
