"""Drop-in fidelity: what real clients of the platform trip over, through the real server."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from conftest import FakeClock, RunningServer, add_operation, add_token, free_port
from voxmeter.cli.serve import serve
from voxmeter.config import Settings
from voxmeter.domain.models import TokenScope
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


def _abandon(server: RunningServer, requests: list[bytes], after: float) -> None:
    """Send each request on its own connection, then hang up on all of them."""
    port = int(server.base_url.rsplit(":", 1)[1])
    connections = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in requests]
    try:
        for connection, request in zip(connections, requests, strict=True):
            connection.sendall(request)
        time.sleep(after)
    finally:
        for connection in connections:
            connection.close()
    time.sleep(0.1)  # the server sees the connections close


HANGING_UP = {"simulated_latency_seconds": 1.5}


@pytest.mark.parametrize("settings_overrides", [HANGING_UP])
def test_a_report_call_abandoned_by_its_client_frees_its_slot_at_once(
    server: RunningServer, report: str
) -> None:
    call = (
        f"GET {BILLING}?api=ivr_calls HTTP/1.1\r\nHost: x\r\nwolkvox-token: {report}\r\n\r\n"
    ).encode()
    _abandon(server, [call] * server.settings.concurrency_per_token, after=0.3)
    with server.client(report) as http:
        answer = http.get(BILLING, params={"api": "ivr_calls"})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("settings_overrides", [HANGING_UP])
async def test_an_upload_abandoned_by_its_client_frees_its_slot_at_once(
    server: RunningServer, store: Store, clock: FakeClock
) -> None:
    operation = await add_operation(store, clock)
    ingest = await add_token(store, clock, operation, TokenScope.INGEST)

    def upload(event_id: str) -> bytes:
        body = (
            f'{{"events": [{{"id": "{event_id}", "meter": "ivr_calls", "quantity": 1, '
            f'"time": "2026-11-24T12:00:00Z"}}]}}'
        ).encode()
        head = (
            f"POST /api/v2/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nwolkvox-token: {ingest}\r\n\r\n"
        ).encode()
        return head + body

    _abandon(server, [upload("a"), upload("b")], after=0.3)
    with server.client(ingest) as http:
        answer = http.post(
            "/api/v2/events",
            json={
                "events": [
                    {"id": "c", "meter": "ivr_calls", "quantity": 1, "time": "2026-11-24T12:00:00Z"}
                ]
            },
        )
    assert answer.status_code == 200, answer.text


async def test_serve_speaks_tls_with_a_given_certificate(
    store: Store, clock: FakeClock, report: str, database_url: str, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=wv9901.wolkvox.com", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "voxmeter", "serve", "--port", str(port),
         "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
        env={**os.environ, "VOXMETER_DATABASE_URL": database_url},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"https://127.0.0.1:{port}{BILLING}?api=ivr_calls"
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(
                    url,
                    headers={"wolkvox-token": report},
                    verify=ssl.create_default_context(cafile=str(cert)),
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.2)
        assert answer.status_code == 200
        assert answer.json()["data"][0]["items"] == "0"
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_serve_wants_both_tls_files(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("")
    result = CliRunner().invoke(serve, ["--ssl-certfile", str(cert)])
    assert result.exit_code == 2
    assert "give --ssl-certfile and --ssl-keyfile together" in result.output


ALLOWED_ORIGIN = "https://dashboard.example.com"


@pytest.mark.parametrize(
    "settings_overrides", [{"cors_origins": f"{ALLOWED_ORIGIN}, https://b.test"}]
)
@pytest.mark.parametrize("path", [BILLING, "/api/v2/events"])
def test_a_listed_origin_gets_its_preflight_and_cors_headers(
    server: RunningServer, report: str, path: str
) -> None:
    with server.client() as http:
        preflight = http.options(
            path,
            headers={
                "Origin": ALLOWED_ORIGIN,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "wolkvox-token",
            },
        )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert "wolkvox-token" in preflight.headers["access-control-allow-headers"]
    with server.client(report) as http:
        answers = [
            http.get(BILLING, params={"api": "ivr_calls"}, headers={"Origin": ALLOWED_ORIGIN}),
            http.get(BILLING, params={"api": "nope"}, headers={"Origin": ALLOWED_ORIGIN}),
            http.get("/openapi.json", headers={"Origin": ALLOWED_ORIGIN}),
        ]
    for answer in answers:
        assert answer.headers["access-control-allow-origin"] == ALLOWED_ORIGIN, answer
        assert "X-RateLimit-Remaining" in answer.headers["access-control-expose-headers"]


@pytest.mark.parametrize("settings_overrides", [{"cors_origins": ALLOWED_ORIGIN}, {}])
def test_an_unlisted_origin_gets_no_cors_headers(server: RunningServer, report: str) -> None:
    elsewhere = {"Origin": "https://evil.example.com"}
    with server.client(report) as http:
        answer = http.get(BILLING, params={"api": "ivr_calls"}, headers=elsewhere)
        preflight = http.options(
            BILLING, headers={**elsewhere, "Access-Control-Request-Method": "GET"}
        )
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.parametrize("origins", ["dashboard.example.com", "https://a.test/path"])
def test_cors_origins_must_be_origins(origins: str) -> None:
    with pytest.raises(ValueError, match="cors_origins"):
        Settings(cors_origins=origins)
