"""Secrets stay secret, operations stay apart, hostile input bounces off."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from conftest import FakeClock, RunningServer, add_operation, add_token, free_port
from ledger_helpers import record
from voxmeter.domain import tokens
from voxmeter.domain.models import TokenScope
from voxmeter.storage.base import Store
from voxmeter.storage.sqlite import sqlite_path

BILLING = "/api/v2/billing.php"
INFORMATION = "/api/v2/information.php"


def database_bytes(database_url: str) -> bytes:
    """Everything the database holds, as bytes to search."""
    if database_url.startswith("postgresql://"):
        with psycopg.connect(database_url) as conn:
            rows = conn.execute("SELECT t::text FROM tokens t").fetchall()
        return "\n".join(row[0] for row in rows).encode()
    path = Path(sqlite_path(database_url))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())


async def test_tokens_are_stored_only_as_hashes(store: Store, clock: FakeClock, database_url: str):
    operation = await add_operation(store, clock)
    secrets = [await add_token(store, clock, operation, scope) for scope in TokenScope]
    stored = database_bytes(database_url)
    for secret in secrets:
        random_part = secret.split("_", 2)[2]  # it may hold "_" itself
        assert random_part.encode() not in stored
        assert (
            tokens.secret_hash(secret).hex().encode() in stored
            or tokens.secret_hash(secret) in stored
        )


async def test_secrets_are_compared_in_constant_time(
    server: RunningServer, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    compared: list[tuple[bytes, bytes]] = []
    real = tokens.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    with server.client(secret) as http:
        assert http.get(BILLING, params={"api": "ivr_calls"}).status_code == 200
        wrong = secret[:-4] + "AAAA"
        assert (
            http.get(
                BILLING, params={"api": "ivr_calls"}, headers={"wolkvox-token": wrong}
            ).status_code
            == 403
        )
    assert len(compared) == 2


async def test_tokens_never_reach_the_logs(
    server: RunningServer, store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    ingest = await add_token(store, clock, operation, TokenScope.INGEST)
    caplog.set_level(logging.DEBUG)
    with server.client() as http:
        for token in (secret, ingest, secret + "x", "vxm_" + "0" * 12 + "_guess"):
            http.get(BILLING, params={"api": "ivr_calls"}, headers={"wolkvox-token": token})
            http.get(INFORMATION, params={"api": "nope"}, headers={"wolkvox-token": token})
            http.post("/api/v2/events", content=b"{", headers={"wolkvox-token": token})
    assert "voxmeter.access" in caplog.text  # the access log did run
    for token in (secret, ingest):
        assert token not in caplog.text
        assert token.split("_", 2)[2] not in caplog.text  # the random part, whole


async def test_no_endpoint_crosses_operations(
    server: RunningServer, store: Store, clock: FakeClock
):
    mine = await add_operation(store, clock, name="Mine", licenses=1)
    theirs = await add_operation(store, clock, name="Theirs", licenses=9, pbx=5)
    await record(store, theirs, clock(), ("ivr_calls", 99, "2026-11-02T12:00:00Z", "their-cdr"))
    report = await add_token(store, clock, mine)
    ingest = await add_token(store, clock, mine, TokenScope.INGEST)
    with server.client() as http:

        def call(method: str, path: str, token: str, **kwargs) -> httpx.Response:
            return http.request(method, path, headers={"wolkvox-token": token}, **kwargs)

        row = call("GET", BILLING, report, params={"api": "ivr_calls"}).json()["data"][0]
        assert (row["operation"], row["items"]) == ("Mine", "0")
        services = call("GET", INFORMATION, report, params={"api": "services"}).json()["data"][0]
        assert (services["licenses"], services["pbx"]) == ("1", "0")
        info = call("GET", INFORMATION, report, params={"api": "token_info"}).json()["data"][0]
        assert info["all_token_today"] == "3"  # only this operation's calls
        listed = call("GET", "/api/v2/events", ingest).json()
        assert listed["data"] == []
        void = call("POST", "/api/v2/events/corrections", ingest,
                    json={"corrections": [{"id": "their-cdr", "action": "void"}]})  # fmt: skip
        assert void.status_code == 404
        reuse = call("POST", "/api/v2/events", ingest, json={"events": [
            {"id": "their-cdr", "meter": "ivr_calls", "quantity": 1, "time": "2026-11-20T10:00:00Z"}
        ]})  # fmt: skip
        assert reuse.status_code == 200  # ids are per operation: no conflict with theirs
    from datetime import date

    theirs_total = await store.summed_total(
        theirs.id, "ivr_calls", date(2026, 11, 1), date(2026, 11, 30)
    )
    assert theirs_total == 99


@pytest.mark.parametrize(
    "api",
    ["ivr_calls' OR '1'='1", "ivr_calls;DROP TABLE events", "ivr_calls\x00", "../../etc/passwd",
     "ĩvr_calls", "%00", "x" * 5000],
)  # fmt: skip
async def test_injection_attempts_get_envelopes(
    server: RunningServer, store: Store, clock: FakeClock, api: str
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        response = http.get(BILLING, params={"api": api})
        assert response.status_code == 400
        assert response.json()["msg"] == "THE API YOU WANT TO CONSULT DOES NOT EXIST"
        assert http.get(BILLING, params={"api": "ivr_calls"}).json()["data"][0]["items"] == "0"


def raw_exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_malformed_and_oversized_requests_are_refused_with_bounded_cost(serve_process):
    server = serve_process(workers=1)
    port = int(server.base_url.rsplit(":", 1)[1])
    crlf = raw_exchange(
        port, b"GET /api/v2/billing.php?api=ivr_calls HTTP/1.1\r\nHost: x\r\n"
        b"wolkvox-token: a\rInjected: yes\r\nConnection: close\r\n\r\n",
    )  # fmt: skip
    assert crlf.startswith(b"HTTP/1.1 400")
    huge_header = raw_exchange(
        port, b"GET /api/v2/billing.php?api=ivr_calls HTTP/1.1\r\nHost: x\r\nwolkvox-token: "
        + b"a" * 200_000 + b"\r\nConnection: close\r\n\r\n",
    )  # fmt: skip
    # Refused (a 4xx, not a crash or a hang), whoever refuses it: the HTTP parser or the app.
    assert 400 <= int(huge_header.split(b" ", 2)[1]) < 500
    with httpx.Client(base_url=server.base_url) as http:
        long_query = http.get("/api/v2/billing.php?api=" + "a" * 60_000)
        assert long_query.status_code in (400, 401, 414)
        # The server is still serving.
        assert http.get("/healthz").status_code == 200


def test_idle_connections_are_closed(serve_process):
    server = serve_process(workers=1)
    port = int(server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b'{"status":"ok"}'):  # headers and body may come apart
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server, not by us
        assert time.monotonic() - started < 14


def test_a_slow_loris_does_not_stop_others(serve_process):
    server = serve_process(workers=1)
    port = int(server.base_url.rsplit(":", 1)[1])
    lorises = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        lorises.append(sock)
    try:
        assert httpx.get(server.base_url + "/healthz", timeout=5).status_code == 200
    finally:
        for sock in lorises:
            sock.close()


def test_the_cli_never_echoes_a_secret_it_was_given(tmp_path: Path):
    """`token create` prints the secret once, on stdout; errors never repeat one."""
    url = f"sqlite:///{tmp_path / 'v.db'}"
    base = [sys.executable, "-m", "voxmeter", "--database-url", url]
    subprocess.run([*base, "operation", "create", "Acme", "--licenses", "1"], check=True,
                   capture_output=True)  # fmt: skip
    created = subprocess.run([*base, "token", "create", "Acme"], capture_output=True, text=True,
                             check=True)  # fmt: skip
    secret = created.stdout.strip()
    assert secret not in created.stderr
    listed = subprocess.run([*base, "token", "list", "Acme"], capture_output=True, text=True,
                            check=True)  # fmt: skip
    assert secret not in listed.stdout + listed.stderr
    port = free_port()
    refused = subprocess.run(
        [*base, "get", "ivr_calls", "--base-url", f"http://127.0.0.1:{port}", "--token", secret],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert secret not in refused.stdout + refused.stderr
