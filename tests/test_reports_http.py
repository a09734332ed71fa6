"""The seed endpoints over real HTTP: exact envelopes and exact figures."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from conftest import FakeClock, RunningServer, add_operation, add_token
from ledger_helpers import record
from voxmeter.contract.meters import BILLING_METERS, CodeType
from voxmeter.storage.base import Store

BILLING = "/api/v2/billing.php"
INFORMATION = "/api/v2/information.php"
MONTH_MSG = "Information found for the current month"


def billing_envelope(code: int | str, operation: str, description: str, items: str, date: str):
    return {
        "code": code,
        "error": None,
        "msg": MONTH_MSG,
        "data": [
            {"operation": operation, "description": description, "items": items, "date": date}
        ],
    }


async def test_interactions_is_the_month_to_date_sum(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    await record(
        store, operation, clock(),
        ("interactions", 2, "2026-11-01T05:00:00Z"),  # 00:00 in Bogota: first instant of the month
        ("interactions", 5, "2026-11-10T12:00:00-05:00"),
        ("interactions", 10, "2026-11-24T09:59:00-05:00"),
        ("interactions", 100, "2026-11-01T04:59:59Z"),  # still October in Bogota
        ("ivr_calls", 7, "2026-11-10T12:00:00Z"),  # another meter
    )  # fmt: skip
    with server.client(secret) as http:
        response = http.get(BILLING, params={"api": "interactions"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == billing_envelope(
        200, "Acme BPO", "Omnibox interactions", "17", "2026-11-24"
    )
    # Byte-level: the seed's key order, in the row too.
    assert list(orjson.loads(response.content)) == ["code", "error", "msg", "data"]
    assert list(response.json()["data"][0]) == ["operation", "description", "items", "date"]


async def test_stereo_rec_sums_exact_decimal_minutes_with_string_code(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    await record(
        store, operation, clock(),
        ("stereo_rec", "12.5", "2026-11-03T10:00:00Z"),
        ("stereo_rec", "0.25", "2026-11-04T10:00:00Z"),
        ("stereo_rec", "0.1", "2026-11-05T10:00:00Z"),
        ("stereo_rec", "0.2", "2026-11-05T11:00:00Z"),
    )  # fmt: skip
    with server.client(secret) as http:
        body = http.get(BILLING, params={"api": "stereo_rec"}).json()
    # 0.1 + 0.2 is 0.3 exactly here, unlike in binary floating point.
    assert body == billing_envelope(
        "200", "Acme BPO", "Stereo recording minutes", "13.05", "2026-11-24"
    )


async def test_ivr_calls_follows_the_month_boundary_in_the_operation_time_zone(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock, timezone="America/Bogota")
    secret = await add_token(store, clock, operation)
    clock.now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 22:00 on 30 Nov in Bogota
    await record(
        store, operation, clock(),
        ("ivr_calls", 4, "2026-11-30T22:30:00-05:00"),  # already 1 Dec in UTC
        ("ivr_calls", 3, "2026-11-01T02:00:00Z"),  # 31 Oct in Bogota
    )  # fmt: skip
    with server.client(secret) as http:
        before = http.get(BILLING, params={"api": "ivr_calls"}).json()
        clock.now = datetime(2026, 12, 1, 5, 30, tzinfo=UTC)  # 00:30 on 1 Dec in Bogota
        after = http.get(BILLING, params={"api": "ivr_calls"}).json()
    assert before["data"][0]["items"] == "4"
    assert before["data"][0]["date"] == "2026-11-30"
    assert after["data"][0]["items"] == "0"
    assert after["data"][0]["date"] == "2026-12-01"


async def test_month_starts_earlier_than_utc_east_of_greenwich(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock, timezone="Asia/Tokyo")
    secret = await add_token(store, clock, operation)
    clock.now = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 01:00 on 1 Dec in Tokyo
    await record(
        store, operation, clock(),
        ("ivr_calls", 9, "2026-11-30T15:30:00Z"),  # 00:30 on 1 Dec in Tokyo
        ("ivr_calls", 1, "2026-11-30T14:59:00Z"),  # 23:59 on 30 Nov in Tokyo
    )  # fmt: skip
    with server.client(secret) as http:
        row = http.get(BILLING, params={"api": "ivr_calls"}).json()["data"][0]
    assert (row["items"], row["date"]) == ("9", "2026-12-01")


async def test_chat_licenses_is_the_gauge_as_of_the_query_date(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    await record(
        store, operation, clock(),
        ("chat_licenses", 12, "2026-10-15T12:00:00Z", "oct"),  # carried into November
    )  # fmt: skip
    with server.client(secret) as http:
        carried = http.get(BILLING, params={"api": "chat_licenses"}).json()
        await record(
            store, operation, clock(),
            ("chat_licenses", 18, "2026-11-14T12:00:00Z", "mid"),
            ("chat_licenses", 15, "2026-11-20T12:00:00Z", "late"),
            ("chat_licenses", 16, "2026-11-20T11:00:00Z", "earlier-same-day"),
        )  # fmt: skip
        changed = http.get(BILLING, params={"api": "chat_licenses"}).json()
        clock.now = datetime(2026, 11, 17, 12, 0, tzinfo=UTC)
        as_of_17th = http.get(BILLING, params={"api": "chat_licenses"}).json()
    assert carried == billing_envelope(200, "Acme BPO", "Chat licenses", "12", "2026-11-24")
    assert changed["data"][0]["items"] == "15"
    assert as_of_17th["data"][0]["items"] == "18"


async def test_every_catalogue_meter_answers_zero_without_usage(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        for meter in BILLING_METERS:
            body = http.get(BILLING, params={"api": meter.api}).json()
            assert body["code"] == (200 if meter.code_type is CodeType.NUMBER else "200")
            assert body["data"][0]["items"] == "0", meter.api
            expected_date = "2026-11" if meter.api == "nlp_ai" else "2026-11-24"
            assert body["data"][0]["date"] == expected_date


async def test_services_record_matches_the_seed(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(
        store, clock, licenses=40, pbx=3, services=frozenset({"video_call", "rsync"})
    )
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        response = http.get(INFORMATION, params={"api": "services"})
    assert response.status_code == 200
    assert response.json() == {
        "code": "200",
        "error": None,
        "msg": "1 records were found",
        "data": [
            {
                "licenses": "40",
                "pbx": "3",
                "screen_recording": "no",
                "video_call": "yes",
                "stereo_recording": "no",
                "gamification": "no",
                "text_analytics": "no",
                "speech_analytics": "no",
                "rsync": "yes",
            }
        ],
    }
    assert list(response.json()["data"][0])[:2] == ["licenses", "pbx"]


@pytest.mark.parametrize(
    "extra", [{}, {"wolkvox_server": "9901"}, {"wolkvox-server": "9901"}, {"wolkvox-server": "x"}]
)
async def test_server_id_headers_are_accepted_and_never_required(
    server: RunningServer, store: Store, clock: FakeClock, extra: dict[str, str]
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        response = http.get(INFORMATION, params={"api": "services"}, headers=extra)
    assert response.status_code == 200


async def test_a_token_sees_only_its_own_operation(
    server: RunningServer, store: Store, clock: FakeClock
):
    acme = await add_operation(store, clock, name="Acme BPO", licenses=5)
    other = await add_operation(store, clock, name="Other Ops", licenses=9, pbx=4)
    acme_secret = await add_token(store, clock, acme)
    await record(store, other, clock(), ("ivr_calls", 50, "2026-11-02T12:00:00Z"))
    await record(store, acme, clock(), ("ivr_calls", 2, "2026-11-02T12:00:00Z"))
    with server.client(acme_secret) as http:
        row = http.get(BILLING, params={"api": "ivr_calls"}).json()["data"][0]
        services = http.get(INFORMATION, params={"api": "services"}).json()["data"][0]
    assert (row["operation"], row["items"]) == ("Acme BPO", "2")
    assert (services["licenses"], services["pbx"]) == ("5", "0")
