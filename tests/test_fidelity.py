"""Drop-in fidelity: what real clients of the platform trip over, through the real server."""

from __future__ import annotations

import pytest

from conftest import FakeClock, RunningServer, add_operation, add_token
from voxmeter.storage.base import Store

BILLING = "/api/v2/billing.php"
INFORMATION = "/api/v2/information.php"


@pytest.fixture
async def report(store: Store, clock: FakeClock) -> str:
    return await add_token(store, clock, await add_operation(store, clock))


@pytest.mark.parametrize(
    "path", [BILLING + "/", "/" + BILLING, "/api//v2/billing.php", "//api/v2/billing.php/"]
)
def test_doubled_and_trailing_slashes_answer_as_the_canonical_path(
    server: RunningServer, report: str, path: str
) -> None:
    with server.client(report) as http:
        canonical = http.get(BILLING, params={"api": "ivr_calls"})
        answer = http.get(server.base_url + path, params={"api": "ivr_calls"})
        assert answer.request.url.path == path
    assert answer.status_code == 200, answer.text
    assert answer.json() == canonical.json()
    assert "location" not in answer.headers


def test_envelopes_say_their_charset_and_reports_are_never_cached(
    server: RunningServer, report: str
) -> None:
    with server.client(report) as http:
        answers = [
            http.get(BILLING, params={"api": "ivr_calls"}),
            http.get(BILLING, params={"api": "nope"}),
            http.get(INFORMATION, params={"api": "token_info"}),
            http.post(BILLING),  # 405, answered by Starlette
            http.get("/no/such/path"),  # 404, answered by Starlette
        ]
    for answer in answers:
        assert answer.headers["content-type"] == "application/json; charset=utf-8", answer
    for answer in answers[:3]:
        assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("date_ini", "date_end"),
    [("2026-11-02", "2026-11-20"), ("20261102000000", "20261120235959")],
)
def test_dates_are_taken_as_iso_or_as_the_platform_writes_them(
    server: RunningServer, report: str, date_ini: str, date_end: str
) -> None:
    params = {"api": "ivr_calls", "detail": "daily", "date_ini": date_ini, "date_end": date_end}
    with server.client(report) as http:
        answer = http.get(BILLING, params=params)
    assert answer.status_code == 200, answer.text
    days = [row["date"] for row in answer.json()["data"]]
    assert (days[0], days[-1], len(days)) == ("2026-11-02", "2026-11-20", 19)


@pytest.mark.parametrize("bad", ["20261102", "2026110200000", "20261132000000", "2026-11-2"])
def test_malformed_dates_are_refused_with_both_formats_named(
    server: RunningServer, report: str, bad: str
) -> None:
    with server.client(report) as http:
        answer = http.get(BILLING, params={"api": "ivr_calls", "date_ini": bad})
    if bad == "20261102":  # ISO 8601's basic form is a date too
        assert answer.status_code == 200
        return
    assert answer.status_code == 400
    assert answer.json()["data"] == [
        {"parameter": "date_ini", "reason": "expected a date as YYYY-MM-DD or YYYYMMDDHHMMSS"}
    ]


async def test_available_consumption_options_is_the_tokens_own_remainder(
    server: RunningServer, store: Store, clock: FakeClock, report: str
) -> None:
    operation = (await store.list_operations())[0]
    other = await add_token(store, clock, operation)
    with server.client(other) as http:
        for _ in range(5):
            assert http.get(BILLING, params={"api": "ivr_calls"}).is_success
    with server.client(report) as http:
        http.get(BILLING, params={"api": "ivr_calls"})
        answer = http.get(INFORMATION, params={"api": "token_info"})
    info = answer.json()["data"][0]
    assert (info["token_limit"], info["token_use_today"], info["all_token_today"]) == (
        "3000",
        "2",
        "7",
    )
    assert info["available_consumption_options"] == "2998"  # token_limit - token_use_today
    assert answer.headers["x-ratelimit-remaining"] == "2993"  # the operation's remainder
