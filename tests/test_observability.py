"""Health, readiness, metrics and request ids."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from conftest import FakeClock, RunningServer, add_operation, add_token, execute_sql
from voxmeter.domain.models import TokenScope
from voxmeter.server import observability
from voxmeter.storage.base import Store


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line) or re.fullmatch(
            rf"{name} (\S+)", line
        )
        if not match:
            continue
        if len(match.groups()) == 1:
            return float(match.group(1))
        present = ",".join(sorted(match.group(1).split(",")))
        if all(part in present.split(",") for part in wanted.split(",") if part):
            total += float(match.group(2))
    return total


async def test_health_and_readiness_reveal_nothing(
    server: RunningServer, store: Store, clock: FakeClock, database_url: str
):
    await add_operation(store, clock, name="Secret Operation")
    with server.client() as http:
        health = http.get("/healthz")
        ready = http.get("/readyz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
        assert "Secret" not in health.text + ready.text
        execute_sql(database_url, "UPDATE alembic_version SET version_num = 'stale'")
        behind = http.get("/readyz")
    assert behind.status_code == 503
    assert "schema" in behind.json()["reason"]


@pytest.mark.parametrize("settings_overrides", [{"calls_per_license": 1}])
async def test_metrics_count_requests_events_and_refusals(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock, licenses=2)
    report = await add_token(store, clock, operation)
    feeder = await add_operation(store, clock, name="Feeder", licenses=5)
    ingest = await add_token(store, clock, feeder, TokenScope.INGEST)
    with server.client() as http:
        before = http.get("/metrics").text
        for _ in range(3):
            http.get("/api/v2/billing.php?api=ivr_calls", headers={"wolkvox-token": report})
        event = {"id": "e1", "meter": "ivr_calls", "quantity": 2, "time": "2026-11-24T09:00:00Z"}
        http.post("/api/v2/events", json={"events": [event]}, headers={"wolkvox-token": ingest})
        after = http.get("/metrics").text
    assert after.startswith("# HELP")

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    billing = {"endpoint": "/api/v2/billing.php", "api": "ivr_calls"}
    assert grew("voxmeter_requests_total", **billing, status="200") == 2
    assert grew("voxmeter_requests_total", **billing, status="403") == 1  # 2 licenses x 1 call
    assert grew("voxmeter_limit_refusals_total", limit="quota") == 1
    assert grew("voxmeter_events_total", outcome="accepted") == 1
    assert sample(after, "voxmeter_ledger_events") == 1
    assert grew("voxmeter_request_duration_seconds_count", endpoint="/api/v2/billing.php") == 3


async def test_request_ids_are_echoed(server: RunningServer):
    with server.client() as http:
        kept = http.get("/healthz", headers={"x-request-id": "lb-1234.abc"})
        replaced = http.get("/healthz", headers={"x-request-id": "bad id\twith spaces"})
        fresh = http.get("/healthz")
    assert kept.headers["x-request-id"] == "lb-1234.abc"
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    assert fresh.headers["x-request-id"] != replaced.headers["x-request-id"]


async def test_metrics_add_up_across_workers(store: Store, clock: FakeClock, serve_process):
    operation = await add_operation(store, clock, licenses=5)
    report = await add_token(store, clock, operation)
    server = serve_process(workers=2)
    with httpx.Client(base_url=server.base_url) as http:
        for _ in range(20):  # new connections, so both workers get some
            httpx.get(
                server.base_url + "/api/v2/billing.php?api=chat_licenses",
                headers={"wolkvox-token": report},
            )
        scrapes = [http.get("/metrics").text for _ in range(4)]
    for text in scrapes:  # whichever worker answers the scrape, it counts all of them
        labels = {"endpoint": "/api/v2/billing.php", "api": "chat_licenses", "status": "200"}
        assert sample(text, "voxmeter_requests_total", **labels) == 20
        # The ledger size is one series, whichever worker reads it.
        series = [line for line in text.splitlines() if line.startswith("voxmeter_ledger_events")]
        assert series == ["voxmeter_ledger_events 0.0"]
        assert text.count("# TYPE voxmeter_ledger_events ") == 1


SCRAPE_TOKEN = "scrape-secret-42"


@pytest.mark.parametrize("settings_overrides", [{"metrics_token": SCRAPE_TOKEN}])
async def test_metrics_can_require_a_bearer_token(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    compared: list[bytes] = []
    real_compare = observability.hmac.compare_digest

    def spy(offered: bytes, expected: bytes) -> bool:
        compared.append(offered)
        return real_compare(offered, expected)

    monkeypatch.setattr(observability.hmac, "compare_digest", spy)
    caplog.set_level(logging.DEBUG)
    with server.client() as http:
        refused = [
            http.get("/metrics"),
            http.get("/metrics", headers={"authorization": f"Bearer {SCRAPE_TOKEN[:-1]}"}),
            http.get("/metrics", headers={"authorization": f"Basic {SCRAPE_TOKEN}"}),
        ]
        allowed = http.get("/metrics", headers={"authorization": f"Bearer {SCRAPE_TOKEN}"})
    for answer in refused:
        assert answer.status_code == 401
        assert answer.json() == {
            "code": 401,
            "error": "UNAUTHORIZED",
            "msg": "PLEASE SEND THE METRICS BEARER TOKEN",
            "data": [],
        }
        assert answer.headers["www-authenticate"] == "Bearer"
    assert allowed.status_code == 200
    assert allowed.text.startswith("# HELP")
    assert SCRAPE_TOKEN.encode() in compared  # the constant-time comparison decided
    assert SCRAPE_TOKEN not in caplog.text + repr(server.settings)
