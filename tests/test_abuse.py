"""Hostile input and hostile clients: each is answered, bounded, and nobody else pays.

Everything here targets 127.0.0.1 (the attacker) and 127.0.0.2 (an honest
caller: Linux routes all of 127/8 to loopback, so the two are told apart by
address), and is bounded in sockets and seconds.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from conftest import FakeClock, RunningServer, add_operation, add_token
from voxmeter.config import Settings
from voxmeter.domain.models import Operation, TokenScope
from voxmeter.domain.usage import (
    EventError,
    Window,
    parse_correction,
    scaled_correction,
    validate_batch,
)
from voxmeter.server.app import create_app
from voxmeter.server.connections import guarded_protocol, uvicorn_options
from voxmeter.storage.base import Store

HONEST = "127.0.0.2"
REPORT = "/api/v2/billing.php?api=ivr_calls"


@pytest.fixture
def guarded(
    store: Store, database_url: str, clock: FakeClock, settings_overrides: dict[str, Any]
) -> Iterator[RunningServer]:
    """voxmeter behind its connection guard, as ``voxmeter serve`` runs it."""
    settings = Settings(database_url=database_url, **settings_overrides)
    config = uvicorn.Config(
        create_app(settings, clock=clock),
        log_level="error",
        lifespan="on",
        http=guarded_protocol(settings),
        **uvicorn_options(),
    )
    running = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    yield RunningServer(base_url=f"http://127.0.0.1:{port}", settings=settings)
    running.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"header_timeout_seconds": 2.0, "body_timeout_seconds": 2.0}


@pytest.fixture
async def secrets(store: Store, clock: FakeClock) -> dict[str, str]:
    operation = await add_operation(store, clock)
    return {
        "report": await add_token(store, clock, operation),
        "ingest": await add_token(store, clock, operation, TokenScope.INGEST),
    }


def assert_envelope(raw: bytes, status: int, msg_start: str) -> None:
    """A raw HTTP answer: the status, the envelope, and the connection closed."""
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), head
    assert b"connection: close" in head.lower()
    assert b"content-type: application/json; charset=utf-8" in head.lower()
    answer = orjson.loads(body)
    assert answer["code"] == status
    assert answer["msg"].startswith(msg_start), answer


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def attacker(base_url: str) -> socket.socket:
    port = int(base_url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def honest_client(base_url: str, secret: str) -> httpx.Client:
    port = base_url.rsplit(":", 1)[1]
    transport = httpx.HTTPTransport(local_address=HONEST)
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"wolkvox-token": secret},
        transport=transport,
        timeout=10,
    )


SLOWLORIS = 1000


def test_a_slowloris_does_not_keep_honest_callers_out(
    guarded: RunningServer, secrets: dict[str, str]
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8 * SLOWLORIS)), hard))
    statuses: list[int] = []
    sockets: list[socket.socket] = []
    try:
        with honest_client(guarded.base_url, secrets["report"]) as client:
            for count in range(SLOWLORIS):
                sock = attacker(guarded.base_url)
                sock.sendall(b"GET " + REPORT.encode() + b" HTTP/1.1\r\nHost: x\r\n")
                sockets.append(sock)
                if count % 50 == 0:
                    statuses.append(client.get(REPORT).status_code)
            statuses.append(client.get(REPORT).status_code)
        assert statuses == [200] * (SLOWLORIS // 50 + 1)
        # The address's cap made room by closing its oldest slow connections...
        cap = guarded.settings.max_connections_per_address
        evicted, held = sockets[:-cap], sockets[-cap:]
        assert_envelope(read_all(evicted[0], 5), 503, "TOO MANY CONNECTIONS")
        assert_envelope(read_all(evicted[-1], 5), 503, "TOO MANY CONNECTIONS")
        # ... and the header timeout closes the rest.
        for sock in (held[0], held[-1]):
            assert_envelope(read_all(sock, 10), 408, "THE REQUEST HEADERS WERE NOT RECEIVED")
    finally:
        for sock in sockets:
            sock.close()


def test_an_oversized_header_is_answered_431(guarded: RunningServer) -> None:
    sock = attacker(guarded.base_url)
    with sock:
        huge = b"x" * (1024 * 1024)
        # Refused before it is all sent, perhaps; the answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"GET / HTTP/1.1\r\nX-Big: " + huge + b"\r\n\r\n")
        assert_envelope(read_all(sock, 5), 431, "THE REQUEST HEADERS EXCEED")


def test_too_many_headers_are_answered_431(guarded: RunningServer) -> None:
    count = guarded.settings.max_header_count + 1
    headers = b"".join(b"X-H%d: 1\r\n" % i for i in range(count))
    with attacker(guarded.base_url) as sock:
        sock.sendall(b"GET " + REPORT.encode() + b" HTTP/1.1\r\n" + headers + b"\r\n")
        assert_envelope(read_all(sock, 5), 431, "THE REQUEST HAS MORE THAN")


def test_a_slow_body_is_cut_off_with_408(guarded: RunningServer, secrets: dict[str, str]) -> None:
    head = (
        b"POST /api/v2/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\nwolkvox-token: " + secrets["ingest"].encode() + b"\r\n\r\n"
    )
    with attacker(guarded.base_url) as sock:
        sock.sendall(head + b'{"events": [')
        started = time.monotonic()
        sock.settimeout(0.5)
        answer = b""
        while not answer and time.monotonic() - started < 10:
            try:
                sock.sendall(b" ")  # a byte now and then: never idle, never done
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        assert time.monotonic() - started < guarded.settings.body_timeout_seconds + 2
        assert_envelope(answer + read_all(sock, 5), 408, "THE REQUEST BODY WAS NOT RECEIVED")


FULL_CONNECTIONS = 4
FULL = {
    "max_connections": FULL_CONNECTIONS,
    "header_timeout_seconds": 5.0,
    "body_timeout_seconds": 5.0,
}
BUSY = b"POST /api/v2/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
SLOW = b"GET / HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize("settings_overrides", [FULL])
def test_slow_connections_make_room_when_the_server_is_full(
    guarded: RunningServer, secrets: dict[str, str]
) -> None:
    sockets = [attacker(guarded.base_url) for _ in range(FULL_CONNECTIONS)]
    try:
        for sock in sockets:
            sock.sendall(SLOW)
        time.sleep(0.2)
        with honest_client(guarded.base_url, secrets["report"]) as client:
            assert client.get(REPORT).status_code == 200
        assert_envelope(read_all(sockets[0], 5), 503, "TOO MANY CONNECTIONS")
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("settings_overrides", [FULL])
def test_a_server_full_of_busy_connections_answers_503(
    guarded: RunningServer, secrets: dict[str, str]
) -> None:
    sockets = [attacker(guarded.base_url) for _ in range(FULL_CONNECTIONS)]
    try:
        for sock in sockets:
            sock.sendall(BUSY)  # requests under way are never closed to make room
        time.sleep(0.2)
        with honest_client(guarded.base_url, secrets["report"]) as client:
            answer = client.get(REPORT)
        assert answer.status_code == 503
        assert answer.json()["msg"] == "TOO MANY CONNECTIONS, TRY AGAIN LATER"
        assert answer.headers["retry-after"] == "1"
    finally:
        for sock in sockets:
            sock.close()


# -- quantities ------------------------------------------------------------------

EVENTS = "/api/v2/events"
CORRECTIONS = "/api/v2/events/corrections"
HUGE_EXPONENTS = ["1e600000", "0e600000", "1e-600000", "9" * 5000]


def usage_event(event_id: str, quantity: Any) -> dict[str, Any]:
    return {"id": event_id, "meter": "ivr_calls", "quantity": quantity,
            "time": "2026-11-24T12:00:00Z"}  # fmt: skip


@pytest.mark.parametrize("quantity", HUGE_EXPONENTS)
def test_a_huge_exponent_costs_the_validator_nothing(quantity: str, clock: FakeClock) -> None:
    operation = Operation(id=1, name="Acme", server_id="", timezone="UTC", licenses=1, pbx=0,
                          services=frozenset(), created_at=clock())  # fmt: skip
    window = Window.open_month(operation, clock(), grace=timedelta(0), skew=timedelta(0))
    correction = parse_correction({"id": "a", "action": "amend", "quantity": quantity})
    started = time.thread_time()
    _, rejected = validate_batch([usage_event("a", quantity)], operation, window)
    with pytest.raises(EventError):
        scaled_correction(correction, "ivr_calls")
    assert time.thread_time() - started < 0.05
    assert "quantity" in rejected[0].reason


def test_a_huge_exponent_is_answered_400_at_once(
    guarded: RunningServer, secrets: dict[str, str]
) -> None:
    with guarded.client(secrets["ingest"]) as http:
        started = time.monotonic()
        answer = http.post(EVENTS, json={"events": [usage_event("a", "1e600000")]})
        assert answer.status_code == 400
        assert answer.json()["data"][0]["reason"] == "quantity is too large"
        assert http.post(EVENTS, json={"events": [usage_event("b", 2)]}).status_code == 200
        amend = {"corrections": [{"id": "b", "action": "amend", "quantity": "1e600000"}]}
        answer = http.post(CORRECTIONS, json=amend)
        assert answer.status_code == 400
        assert "quantity is too large" in answer.text
        assert time.monotonic() - started < 5  # seconds per call before the bounds


@pytest.mark.parametrize(
    ("literal", "meter", "items"),
    [(b"3.75", "ivr_minutes", "3.75"), (b"0.1", "ivr_minutes", "0.1"),
     (b"2E0", "ivr_calls", "2"), (b"1e1", "ivr_calls", "10")],
)  # fmt: skip
def test_json_numbers_are_exact_decimals(
    guarded: RunningServer, secrets: dict[str, str], literal: bytes, meter: str, items: str
) -> None:
    body = (
        b'{"events": [{"id": "n", "meter": "%s", "quantity": %s, "time": "2026-11-24T12:00:00Z",'
        b' "attributes": {"rate": 0.25}}]}' % (meter.encode(), literal)
    )
    with guarded.client(secrets["ingest"]) as http:
        answer = http.post(EVENTS, content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 200, answer.text
    with guarded.client(secrets["report"]) as http:
        assert (
            http.get("/api/v2/billing.php", params={"api": meter}).json()["data"][0]["items"]
            == items
        )


def test_a_json_number_past_the_scale_is_refused(
    guarded: RunningServer, secrets: dict[str, str]
) -> None:
    body = (
        b'{"events": [{"id": "n", "meter": "ivr_calls", "quantity": 2.5,'
        b' "time": "2026-11-24T12:00:00Z"}]}'
    )
    with guarded.client(secrets["ingest"]) as http:
        answer = http.post(EVENTS, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["data"][0]["reason"] == "quantity must be a whole number"


# -- parser errors ------------------------------------------------------------------

HOSTILE_BODIES = [
    (b"[" * 1000 + b"]" * 1000, "JSON is nested too deeply"),
    (b'{"events": [{"id": "\xff\xfe"}]}', "invalid UTF-8 at byte"),
]


@pytest.mark.parametrize(("body", "reason"), HOSTILE_BODIES)
def test_hostile_json_is_answered_400_on_a_kept_connection(
    guarded: RunningServer, secrets: dict[str, str], body: bytes, reason: str
) -> None:
    with guarded.client(secrets["ingest"]) as http:
        json_answer = http.post(EVENTS, content=body, headers={"content-type": "application/json"})
        ndjson = b'{"id": "fine"}\n\n' + body
        headers = {"content-type": "application/x-ndjson"}
        ndjson_answer = http.post(EVENTS, content=ndjson, headers=headers)
        assert http.get("/healthz").status_code == 200
    assert json_answer.status_code == 400
    assert json_answer.json()["data"][0]["reason"].startswith(reason)
    assert ndjson_answer.status_code == 400
    where = ndjson_answer.json()["data"][0]
    assert (where["index"], where["line"]) == (1, 3)
    assert where["reason"].startswith(reason)


def test_deeply_nested_attributes_are_a_reason_not_a_fault(
    guarded: RunningServer, secrets: dict[str, str]
) -> None:
    deep = b'{"a": ' * 300 + b"{}" + b"}" * 300  # deeper than orjson writes
    event = orjson.dumps(usage_event("deep", 1))[:-1] + b', "attributes": ' + deep + b"}"
    body = b'{"events": [' + event + b"]}"
    with guarded.client(secrets["ingest"]) as http:
        answer = http.post(EVENTS, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["data"][0]["reason"] == "attributes are nested too deeply"


async def test_an_unexpected_error_keeps_the_connection_alive(
    guarded: RunningServer, secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxmeter.services.usage import UsageService

    async def broken(*args: Any) -> None:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(UsageService, "store", broken)
    with guarded.client(secrets["ingest"]) as http:
        answer = http.post(EVENTS, json={"events": [usage_event("a", 1)]})
        assert answer.status_code == 500
        assert answer.json()["msg"] == "AN INTERNAL ERROR OCCURRED"
        assert answer.headers.get("connection") != "close"
        assert http.get("/healthz").status_code == 200
        assert (
            http.get("/healthz").extensions["network_stream"] is answer.extensions["network_stream"]
        )


# -- memory ---------------------------------------------------------------------

MAXIMAL = 31 * 1024 * 1024
PARALLEL_BODIES = 20
RSS_BOUND_MB = 400


def tiny_values(element: bytes, size: int) -> Iterator[bytes]:
    """A JSON body of ``size`` bytes: ``{"events": [`` then ``element,`` repeated, streamed."""
    yield b'{"events": ['
    chunk = (element + b",") * (65536 // (len(element) + 1))
    for _ in range(size // len(chunk)):
        yield chunk
    yield element + b"]}"


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_parallel_bodies_of_tiny_values_are_refused_unread(
    store: Store, clock: FakeClock, serve_process: Any
) -> None:
    operation = await add_operation(store, clock)
    # Two uploads per token at most: ten tokens send the twenty bodies.
    ingest = [await add_token(store, clock, operation, TokenScope.INGEST) for _ in range(10)]
    served = serve_process(workers=1)
    statuses: list[int] = []

    def upload(index: int) -> None:
        element = b"{}" if index % 2 else b"[]"
        headers = {"wolkvox-token": ingest[index // 2], "content-type": "application/json"}
        answer = httpx.post(
            served.base_url + EVENTS,
            content=tiny_values(element, MAXIMAL),
            headers=headers,
            timeout=60,
        )
        statuses.append(answer.status_code)
        assert answer.json()["msg"].startswith("THE BODY EXCEEDS THE LIMIT OF"), answer.text

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(PARALLEL_BODIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses == [413] * PARALLEL_BODIES
    assert peak_rss_mb(served.process.pid) < RSS_BOUND_MB


def test_a_token_reads_no_more_bodies_at_once_than_it_may_make_calls(
    guarded: RunningServer, secrets: dict[str, str]
) -> None:
    head = (
        b"POST /api/v2/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\nwolkvox-token: " + secrets["ingest"].encode() + b"\r\n\r\n{"
    )
    pending = [attacker(guarded.base_url) for _ in range(guarded.settings.concurrency_per_token)]
    try:
        for sock in pending:
            sock.sendall(head)
        time.sleep(0.2)
        with guarded.client(secrets["ingest"]) as http:
            answer = http.post(EVENTS, json={"events": [usage_event("a", 1)]})
            assert answer.status_code == 403
            assert (
                answer.json()["msg"] == "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"
            )
        for sock in pending:
            sock.close()
        time.sleep(0.2)
        with guarded.client(secrets["ingest"]) as http:
            assert http.post(EVENTS, json={"events": [usage_event("a", 1)]}).status_code == 200
        with guarded.client(secrets["report"]) as http:
            used = http.get("/api/v2/information.php", params={"api": "token_info"}).json()
        # The refused upload counted nothing: the accepted one and this call.
        assert used["data"][0]["all_token_today"] == "2"
    finally:
        for sock in pending:
            sock.close()


def test_a_refusal_never_echoes_a_body_whole(
    guarded: RunningServer, secrets: dict[str, str]
) -> None:
    long_meter = "m" * 3000
    events = [
        {"id": f"e{i}", "meter": long_meter, "quantity": 1, "time": "2026-11-24T12:00:00Z"}
        for i in range(5000)
    ]
    with guarded.client(secrets["ingest"]) as http:
        answer = http.post(EVENTS, json={"events": events})
    assert answer.status_code == 400
    data = answer.json()["data"]
    assert len(data) == 101
    assert data[-1] == {"omitted": 4900}
    assert data[0]["index"] == 0 and data[0]["id"] == "e0"
    assert all(len(item["reason"]) <= 203 for item in data[:100])
    assert len(answer.content) < 40_000


async def test_parallel_maximal_uploads_stay_within_the_workers_budget(
    store: Store, clock: FakeClock, serve_process: Any
) -> None:
    operation = await add_operation(store, clock)
    ingest = [await add_token(store, clock, operation, TokenScope.INGEST) for _ in range(10)]
    served = serve_process(workers=1)
    attributes = {f"k{i}": "v" * 90 for i in range(30)}
    event = {**usage_event("e", "not a number"), "attributes": attributes}
    body = orjson.dumps({"events": [{**event, "id": f"e{i}"} for i in range(10_000)]})
    assert MAXIMAL - 4 * 1024 * 1024 < len(body) < MAXIMAL
    statuses: list[int] = []

    def upload(index: int) -> None:
        headers = {"wolkvox-token": ingest[index // 2], "content-type": "application/json"}
        answer = httpx.post(served.base_url + EVENTS, content=body, headers=headers, timeout=120)
        statuses.append(answer.status_code)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(PARALLEL_BODIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    # Invalid events refused 400; uploads past the worker's byte budget 503.
    assert sorted(set(statuses)) == [400, 503] and len(statuses) == PARALLEL_BODIES
    assert peak_rss_mb(served.process.pid) < RSS_BOUND_MB


# -- query strings -------------------------------------------------------------------


def test_too_many_query_parameters_are_refused_in_the_envelope(
    guarded: RunningServer, secrets: dict[str, str]
) -> None:
    limit = guarded.settings.max_query_parameters
    many = "&".join(f"p{i}=1" for i in range(limit)) + "&api=ivr_calls"
    with guarded.client(secrets["report"]) as http:
        assert http.get("/api/v2/billing.php?" + "&".join(["api=ivr_calls"] * limit)).is_success
        answer = http.get("/api/v2/billing.php?" + many)
        assert answer.status_code == 400
        assert answer.json()["msg"] == "INVALID PARAMETERS"
        assert answer.json()["data"] == [
            {"parameter": "query", "reason": f"more than {limit} parameters in the query string"}
        ]
        assert http.get("/api/v2/events?" + many, headers=ingest_header(secrets)).status_code == 400
    # A million parameters: the request line is past the header limit.
    with attacker(guarded.base_url) as sock:
        query = b"&".join([b"a"] * 1_000_000)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"GET /api/v2/billing.php?" + query + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_envelope(read_all(sock, 5), 414, "THE REQUEST URI EXCEEDS")


def ingest_header(secrets: dict[str, str]) -> dict[str, str]:
    return {"wolkvox-token": secrets["ingest"]}


# -- unknown tokens ----------------------------------------------------------------------


def test_an_unknown_token_costs_one_lookup_not_one_per_call(
    guarded: RunningServer, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxmeter.domain import tokens

    lookups: list[str] = []
    find_credential = type(store).find_credential

    async def counted(self: Store, token_id: str) -> Any:
        lookups.append(token_id)
        return await find_credential(self, token_id)

    monkeypatch.setattr(type(store), "find_credential", counted)
    _, unknown = tokens.mint()  # well formed, never stored
    with guarded.client(unknown) as http:
        for _ in range(50):
            answer = http.get(REPORT)
            assert answer.status_code == 403
            assert answer.json()["msg"] == "PLEASE VALIDATE TOKEN"
    assert len(lookups) == 1
