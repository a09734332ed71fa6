"""The OpenAPI document matches the routes, and a fuzzer finds no 5xx and no envelope breach."""

from __future__ import annotations

import asyncio
import os
import re
import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.routing import Route

from conftest import FakeClock, RunningServer, add_operation, add_token, snapshot
from ledger_helpers import record
from voxmeter.domain.models import TokenScope
from voxmeter.server.app import create_app
from voxmeter.server.openapi import document
from voxmeter.storage import open_store
from voxmeter.storage.base import Store

FUZZ_EXAMPLES = int(os.environ.get("VOXMETER_FUZZ_EXAMPLES", "8"))


def test_every_route_is_documented_and_nothing_else():
    routed = {
        (route.path, method.lower())
        for route in create_app().routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {
        (path, method) for path, operations in document()["paths"].items() for method in operations
    }
    assert routed == documented


def test_every_operation_shows_an_example_answer_and_every_json_answer_has_one():
    missing = []
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            media = [
                (status, kind, content)
                for status, answer in operation["responses"].items()
                for kind, content in answer.get("content", {}).items()
            ]
            shown = [m for m in media if "example" in m[2] or "examples" in m[2]]
            if not shown or any(
                kind == "application/json" and m not in shown for m in media for kind in [m[1]]
            ):
                missing.append(f"{method.upper()} {path}")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body and "example" not in body and path.startswith("/api/"):
                missing.append(f"{method.upper()} {path} request")
    assert missing == []


def test_the_document_and_the_page_are_served(server: RunningServer):
    with server.client() as http:
        spec = http.get("/openapi.json").json()
        page = http.get("/docs")
        assets = {
            name: http.get(f"/docs/assets/{name}")
            for name in re.findall(r'(?:src|href)="/docs/assets/([^"]+)"', page.text)
        }
        unknown = http.get("/docs/assets/openapi.py")
    assert spec["openapi"] == "3.1.0"
    assert (
        "ivr_calls"
        in spec["paths"]["/api/v2/billing.php"]["get"]["parameters"][0]["schema"]["enum"]
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # Everything the page loads is this server's own: no URL names another host.
    assert re.findall(r"(?:https?:)?//[^\s\"'<>]+", page.text) == []
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert {
        name: (r.status_code, r.headers["content-type"].split(";")[0]) for name, r in assets.items()
    } == {
        "swagger-ui.css": (200, "text/css"),
        "swagger-ui-bundle.js": (200, "text/javascript"),
        "docs.js": (200, "text/javascript"),
        "LICENSE": (200, "text/plain"),
        "NOTICE": (200, "text/plain"),
    }
    assert 'url: "/openapi.json"' in assets["docs.js"].text
    assert "Apache License" in assets["LICENSE"].text
    assert unknown.status_code == 404 and unknown.json()["code"] == 404


def test_the_page_renders_every_operation_in_a_browser(server: RunningServer):
    """Swagger UI draws the document under the page's CSP, asking no other host for anything."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            requested: list[str] = []
            complaints: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.on("console", lambda message: complaints.append(message.text))
            page.goto(server.base_url + "/docs")
            page.wait_for_selector(".opblock-summary-path")
            drawn = page.locator(".opblock").count()
            page.locator(".opblock-summary", has_text="/api/v2/billing.php").first.click()
            page.wait_for_selector(".opblock-body .example, .opblock-body .microlight")
        finally:
            browser.close()
    assert drawn == sum(len(operations) for operations in document()["paths"].values())
    assert all(url.startswith(server.base_url) or url.startswith("data:") for url in requested)
    assert [text for text in complaints if "Content Security Policy" in text] == []


@pytest.fixture
async def fuzz_target(server: RunningServer, store: Store, clock: FakeClock):
    operation = await add_operation(store, clock, licenses=1000)
    await record(store, operation, clock(), ("ivr_calls", 3, "2026-11-02T12:00:00Z"))
    report = await add_token(store, clock, operation)
    ingest = await add_token(store, clock, operation, TokenScope.INGEST)
    return server, report, ingest


def test_fuzzing_finds_no_server_error_and_no_envelope_breach(fuzz_target, database_url):
    """Schemathesis cases for every operation, bounded and derandomized for CI.

    Longer run: raise max_examples (VOXMETER_FUZZ_EXAMPLES) and drop derandomize.
    """
    server, report, ingest = fuzz_target
    api = schemathesis.openapi.from_url(server.base_url + "/openapi.json")

    async def figures():
        store = await open_store(database_url)
        try:
            return {
                name: state[2] for name, state in (await snapshot(store, FakeClock()())).items()
            }
        finally:
            await store.close()

    checked = 0
    current = asyncio.run(figures())
    for result in api.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here, failing the test

        @settings(
            max_examples=FUZZ_EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def exercise(case) -> None:
            nonlocal checked, current
            if case.headers and "wolkvox-token" in case.headers:
                case.headers["wolkvox-token"] = (
                    ingest if case.path.startswith("/api/v2/events") else report
                )
            response = case.call(base_url=server.base_url)
            assert response.status_code < 500, (case.method, case.path, response.text)
            if case.path.startswith("/api/"):
                body = response.json()
                assert list(body) == ["code", "error", "msg", "data"]
                assert int(body["code"]) == response.status_code
            after = asyncio.run(figures())
            if response.status_code >= 400:
                assert after == current  # a refused call changes no figure
            current = after
            checked += 1

        exercise()
    assert checked > 30  # every operation was exercised several times
