"""The console in a real headless Chromium (the distribution's package, driven by Playwright)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from admin_helpers import make_admin
from conftest import add_operation, add_token
from ledger_helpers import record
from voxmeter.domain.admins import IdentityKind, Role
from voxmeter.domain.models import TokenScope

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
SCREENSHOT = Path(__file__).parent.parent / "docs" / "img" / "console-overview.png"


@pytest.fixture
def settings_overrides():
    return {"portal_secret": "browser-test-secret"}


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


REFUSED_EVENT = {"id": "bad-1", "meter": "no_such_meter", "quantity": 1,
                 "time": "2026-11-24T10:00:00Z"}  # fmt: skip


@pytest.fixture
def world(server, store, clock, database_url):
    """Two operations with usage, a refused batch, and an admin person."""

    async def build():
        acme = await add_operation(store, clock, licenses=5)
        other = await add_operation(store, clock, name="Other Op")
        await record(
            store, acme, clock(),
            ("ivr_calls", 4, "2026-11-02T12:00:00Z", "c-1"),
            ("ivr_calls", 9, "2026-11-10T12:00:00Z", "c-2"),
            ("ivr_calls", 2, "2026-11-23T12:00:00Z", "c-3"),
            ("ivr_minutes", 3, "2026-11-05T12:00:00Z", "m-1"),
        )  # fmt: skip
        await record(store, other, clock(), ("ivr_calls", 777, "2026-11-03T12:00:00Z", "o-1"))
        password = await make_admin(database_url, clock, "ana", Role.ADMIN, IdentityKind.USER)
        return (
            password,
            await add_token(store, clock, acme),
            await add_token(store, clock, acme, TokenScope.INGEST),
        )

    password, report, ingest = asyncio.run(build())
    with server.client(ingest) as http:
        assert http.post("/api/v2/events", json={"events": [REFUSED_EVENT]}).status_code == 400
    return password, report


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_the_console_end_to_end(server, world, browser):
    password, report = world
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.base_url + "/")
    assert page.url.endswith("/console/login")
    page.fill("input[name=name]", "ana")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(server.base_url + "/console")

    # The overview shows what the wolkvox billing endpoint answers.
    with server.client(report) as http:
        billing = http.get("/api/v2/billing.php?api=ivr_calls").json()["data"][0]["items"]
    cell = page.locator('tr[data-operation="Acme BPO"][data-meter="ivr_calls"] .items')
    assert cell.inner_text() == billing == "15"
    page.fill("#filter", "other op")
    assert page.locator('tr[data-operation="Acme BPO"]').first.is_hidden()
    page.fill("#filter", "")
    _shot(page, "overview")
    if not SCREENSHOT.exists():  # the README's picture: taken once, then committed
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))

    # The operation page draws a chart with one point per day so far this month.
    page.click("text=Acme BPO")
    page.wait_for_selector('canvas[data-meter="ivr_calls"]')
    points = page.evaluate(
        """() => Chart.getChart(document.querySelector('canvas[data-meter="ivr_calls"]'))
                   .data.datasets[0].data"""
    )
    assert len(points) == 24 and sum(points) == 15
    assert page.evaluate(
        """() => { const c = document.querySelector('canvas[data-meter="ivr_calls"]');
                   const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   return px.some((v, i) => i % 4 === 3 && v !== 0); }"""
    )

    # Create a token, use it, revoke it.
    page.fill("#new-token input[name=description]", "from the browser")
    page.click("#new-token button[type=submit]")
    # Waits by selector: the console's CSP forbids the eval a wait_for_function string needs.
    page.wait_for_selector("#new-secret:has-text('vxm_')")
    secret = page.inner_text("#new-secret")
    with server.client(secret) as http:
        assert http.get("/api/v2/billing.php?api=ivr_calls").status_code == 200
    _shot(page, "operation")
    page.reload()
    row = page.locator("tr", has_text="from the browser")
    row.locator("button.revoke").click()
    row.locator(".state", has_text="revoked").wait_for()
    with server.client(secret) as http:
        assert http.get("/api/v2/billing.php?api=ivr_calls").status_code == 403

    # The rejection debugger shows the refused batch and why.
    page.click("text=Events and rejections")
    # Quantities as the meter counts them: 3 IVR minutes, not 3000 thousandths.
    minutes = page.locator('#events tr[data-event="m-1"] td.num')
    assert minutes.all_inner_texts() == ["3", "3"]
    batch = page.locator("#rejections details.batch").first
    batch.locator("summary").click()
    assert "bad-1" in batch.inner_text()
    assert "no_such_meter" in batch.locator(".reason").inner_text()
    # ...and what was sent.
    sent = json.loads(batch.locator(".sent").inner_text())
    assert sent == REFUSED_EVENT
    _shot(page, "rejections")

    # The portal link shows that operation only, and reaches nothing else.
    page.goto(server.base_url + "/console/operations/Acme%20BPO")
    page.click("#portal-link")
    page.wait_for_selector("#portal-url:has-text('/portal/')")
    link = page.inner_text("#portal-url")
    portal = browser.new_page()
    portal.goto(link)
    assert "Acme BPO" in portal.content() and "Other Op" not in portal.content()
    assert portal.locator('tr[data-meter="ivr_calls"] .items').inner_text() == "15"
    portal.wait_for_selector("canvas")
    _shot(portal, "portal")
    for elsewhere in ("/console", "/console/operations/Other%20Op", "/admin/api/v1/operations"):
        answer = portal.goto(server.base_url + elsewhere)
        assert "777" not in portal.content()
        assert answer is not None and (answer.status == 401 or portal.url.endswith("/login"))
    token = link.rsplit("/", 1)[1]
    other_name = "T3RoZXIgT3A"  # "Other Op", base64url
    forged = portal.goto(server.base_url + "/portal/" + other_name + token[token.index(".") :])
    assert forged is not None and forged.status == 403 and "777" not in portal.content()
    with httpx.Client(base_url=server.base_url) as http:
        assert http.get(f"/portal/{token}x").status_code == 403


@pytest.fixture
def billed(server, store, clock, database_url):
    """An operation with October and November usage on a price book, and an admin person."""

    async def build():
        acme = await add_operation(store, clock)
        await record(
            store, acme, clock(),
            ("ivr_calls", 150, "2026-10-05T12:00:00Z", "oct-1"),
            ("ivr_calls", 30, "2026-10-20T12:00:00Z", "oct-2"),
            ("ivr_calls", 12, "2026-11-20T12:00:00Z", "nov-1"),
        )  # fmt: skip
        key = await make_admin(database_url, clock, "setup", Role.ADMIN, IdentityKind.KEY)
        password = await make_admin(database_url, clock, "ana", Role.ADMIN, IdentityKind.USER)
        return key, password

    key, password = asyncio.run(build())
    api = "/admin/api/v1"
    tiers = [{"up_to": "100", "unit_price": "0.10"}, {"up_to": None, "unit_price": "0.05"}]
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        for method, path, body in (
            ("POST", "/price-books", {"name": "Standard", "currency": "USD"}),
            ("POST", "/price-books/Standard/prices",
             {"meter": "ivr_calls", "from": "2026-10", "tiers": tiers}),
            ("POST", "/price-books/Standard/terms", {"from": "2026-10", "tax_rate": "0.19"}),
            ("PUT", "/operations/Acme BPO/subscription", {"price_book": "Standard"}),
        ):  # fmt: skip
            http.request(method, api + path, json=body).raise_for_status()
    return password


def test_statements_in_the_console(server, billed, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.base_url + "/console/login")
    page.fill("input[name=name]", "ana")
    page.fill("input[name=password]", billed)
    page.click("button[type=submit]")
    page.wait_for_url(server.base_url + "/console")

    # The operation page previews November so far: 12 x 0.10 = 1.20, tax 0.23.
    page.goto(server.base_url + "/console/operations/Acme%20BPO")
    assert page.inner_text("#preview #total") == "1.43"

    # Close October from the statements page; the new statement is listed with its total:
    # 100 x 0.10 + 80 x 0.05 = 14.00, tax 2.66.
    page.click("nav >> text=Statements")
    assert "No statements yet" in page.inner_text("#statements")
    page.fill("#close-month input[name=month]", "2026-10")
    page.click("#close-month button[type=submit]")
    page.wait_for_selector('#statements tr[data-statement="1"]')
    assert page.inner_text('tr[data-statement="1"] .total') == "16.66"
    _shot(page, "statements")

    # The statement shows its lines, the events behind them, and downloads as a PDF.
    page.click('tr[data-statement="1"] >> text=1')
    assert page.inner_text("#total") == "16.66"
    calls = page.locator("#lines tr.events").first
    calls.locator("summary").click()
    assert "oct-1" in calls.inner_text() and "oct-2" in calls.inner_text()
    with page.expect_download() as download:
        page.click("text=PDF")
    assert download.value.suggested_filename == "statement-1.pdf"
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
    _shot(page, "statement")
