"""Price books, subscriptions, previews, month close and statements through the admin API."""

from __future__ import annotations

import asyncio
import csv
import io

import httpx
import orjson
import pytest
from click.testing import CliRunner

from admin_helpers import make_admin
from conftest import add_operation
from ledger_helpers import record
from voxmeter.cli import main
from voxmeter.domain.admins import IdentityKind, Role

API = "/admin/api/v1"
# The test clock stands on 2026-11-24: October is past its close grace, November is not.
OCTOBER_USAGE = (
    ("ivr_calls", 150, "2026-10-05T12:00:00Z", "oct-1"),
    ("ivr_calls", 30, "2026-10-20T12:00:00Z", "oct-2"),
    ("ivr_minutes", 7, "2026-10-21T12:00:00Z", "oct-3"),
)
# 100 x 0.10 + 80 x 0.05 = 14.00 for the calls, 7 x 0.20 = 1.40 for the minutes;
# tax 15.40 x 0.19 = 2.926 -> 2.93
OCTOBER_TOTAL = "18.33"


@pytest.fixture
async def keys(database_url, clock):
    return {
        role: await make_admin(database_url, clock, f"{role.value}-key", role, IdentityKind.KEY)
        for role in Role
    }


def _as(server, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


def _ok(response: httpx.Response) -> list:
    assert response.status_code == 200, response.text
    return response.json()["data"]


def set_up_billing(http: httpx.Client, *operations: str) -> None:
    """The Standard price book (USD, from October) with the operations subscribed."""
    _ok(http.post(f"{API}/price-books", json={"name": "Standard", "currency": "usd"}))
    tiers = [{"up_to": "100", "unit_price": "0.10"}, {"up_to": None, "unit_price": "0.05"}]
    prices = f"{API}/price-books/Standard/prices"
    _ok(http.post(prices, json={"meter": "ivr_calls", "from": "2026-10", "tiers": tiers}))
    _ok(http.post(prices, json={"meter": "ivr_minutes", "from": "2026-10", "unit_price": "0.20"}))
    _ok(
        http.post(f"{API}/price-books/Standard/terms", json={"from": "2026-10", "tax_rate": "0.19"})
    )
    for name in operations:
        _ok(http.put(f"{API}/operations/{name}/subscription", json={"price_book": "Standard"}))


@pytest.fixture
async def acme(store, clock):
    operation = await add_operation(store, clock)
    await record(store, operation, clock(), *OCTOBER_USAGE)
    await record(store, operation, clock(), ("ivr_calls", 12, "2026-11-20T12:00:00Z", "nov-1"))
    return operation


@pytest.fixture
def closed(server, keys, acme):
    """October closed through the API: statement 1."""
    with _as(server, keys[Role.ADMIN]) as http:
        set_up_billing(http, "Acme BPO")
        _ok(http.post(f"{API}/statements/close", json={"month": "2026-10"}))


# (method, path, body, least role allowed); each allowed call succeeds on the `closed` world.
ACTIONS = [
    ("GET", f"{API}/price-books", None, Role.VIEWER),
    ("GET", f"{API}/price-books/Standard", None, Role.VIEWER),
    ("GET", f"{API}/operations/Acme BPO/statement-preview", None, Role.VIEWER),
    ("GET", f"{API}/statements", None, Role.VIEWER),
    ("GET", f"{API}/statements/1", None, Role.VIEWER),
    ("GET", f"{API}/statements/1/lines", None, Role.VIEWER),
    ("GET", f"{API}/statements/1/export?format=pdf", None, Role.VIEWER),
    ("POST", f"{API}/price-books", {"name": "Euro", "currency": "EUR"}, Role.ADMIN),
    ("POST", f"{API}/price-books/Standard/prices",
     {"meter": "asr_calls", "from": "2026-11", "unit_price": "1"}, Role.ADMIN),
    ("POST", f"{API}/price-books/Standard/terms", {"from": "2026-11", "minimum": "5"},
     Role.ADMIN),
    ("PUT", f"{API}/operations/Acme BPO/subscription", {"price_book": "Standard"}, Role.ADMIN),
    ("POST", f"{API}/statements/close", {"month": "2026-10"}, Role.ADMIN),
]  # fmt: skip


@pytest.mark.parametrize("role", list(Role))
def test_viewers_read_and_admins_change(server, keys, closed, role):
    for method, path, body, needed in ACTIONS:
        with _as(server, keys[role]) as http:
            response = http.request(method, path, json=body)
        allowed = role.allows(needed)
        assert response.status_code == (200 if allowed else 403), (method, path, response.text)
        if not allowed:
            assert response.json()["msg"] == f"THIS ACTION NEEDS THE {needed.value.upper()} ROLE"
    with httpx.Client(base_url=server.base_url) as anonymous:
        assert anonymous.get(f"{API}/statements").status_code == 401


def test_every_change_is_audited_and_a_refusal_changes_nothing(server, keys, acme):
    with _as(server, keys[Role.ADMIN]) as http:
        set_up_billing(http, "Acme BPO")
        book_before = _ok(http.get(f"{API}/price-books/Standard"))
        for refused in (
            http.post(f"{API}/price-books/Standard/prices",
                      json={"meter": "ivr_calls", "from": "2026-13", "unit_price": "1"}),
            http.post(f"{API}/price-books/Standard/prices",
                      json={"meter": "ivr_calls", "from": "2026-11", "unit_price": 0.1}),
            http.post(f"{API}/price-books/Standard/prices",
                      json={"meter": "ivr_calls", "from": "2026-11", "tiers": [{"up_to": "5"}]}),
            http.post(f"{API}/price-books/Standard/prices",
                      json={"meter": "ivr_calls", "from": "2026-11", "tiers": "100:0.1"}),
            http.post(f"{API}/price-books/Standard/terms", json={"from": "2026-11", "cap": 1.5}),
            http.post(f"{API}/price-books", json={"name": "Standard", "currency": "USD"}),
            http.post(f"{API}/statements/close", json={"month": "October"}),
            http.post(f"{API}/statements/close", json={}),
            http.put(f"{API}/operations/Acme BPO/subscription", json={"price_book": "None"}),
        ):  # fmt: skip
            assert refused.status_code in (400, 404, 409), refused.text
        assert _ok(http.get(f"{API}/price-books/Standard")) == book_before
        outcome = _ok(http.post(f"{API}/statements/close", json={"month": "2026-10"}))[0]
        log = _ok(http.get(f"{API}/audit"))
    assert [s["total"] for s in outcome["closed"]] == [OCTOBER_TOTAL]
    actions = [(e["actor"], e["action"], e["target"]) for e in reversed(log)]
    assert actions[len(Role) :] == [
        ("admin-key", "pricebook.create", "Standard"),
        ("admin-key", "pricebook.set-price", "Standard/ivr_calls"),
        ("admin-key", "pricebook.set-price", "Standard/ivr_minutes"),
        ("admin-key", "pricebook.set-terms", "Standard"),
        ("admin-key", "operation.subscribe", "Acme BPO"),
        ("admin-key", "statement.close", "2026-10"),
    ]
    subscribe = next(e for e in log if e["action"] == "operation.subscribe")
    assert subscribe["before"] == {"price_book": None}
    assert subscribe["after"] == {"price_book": "Standard"}
    terms = next(e for e in log if e["action"] == "pricebook.set-terms")
    assert terms["before"]["versions"][0]["tax_rate"] == "0"
    assert terms["after"]["versions"][0]["tax_rate"] == "0.19"
    close = log[0]
    assert close["after"]["closed"][0]["number"] == 1


def test_a_close_through_the_api_equals_one_through_the_cli(
    server, store, clock, keys, acme, database_url
):
    async def twin():
        operation = await add_operation(store, clock, name="Twin BPO")
        await record(store, operation, clock(), *OCTOBER_USAGE)

    asyncio.run(twin())
    with _as(server, keys[Role.ADMIN]) as http:
        set_up_billing(http, "Acme BPO", "Twin BPO")
        body = {"month": "2026-10", "operation": "Acme BPO"}
        through_api = _ok(http.post(f"{API}/statements/close", json=body))[0]
    assert [s["number"] for s in through_api["closed"]] == [1]

    runner = CliRunner()
    env = {"VOXMETER_DATABASE_URL": database_url}

    def cli(*args: str) -> str:
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    cli("statement", "close", "--month", "2026-10", "--operation", "Twin BPO")
    with _as(server, keys[Role.VIEWER]) as http:
        listed = _ok(http.get(f"{API}/statements", params={"month": "2026-10"}))
        api_doc, cli_doc = (_ok(http.get(f"{API}/statements/{n}"))[0] for n in (1, 2))
        api_lines = _ok(http.get(f"{API}/statements/1/lines"))
        api_json = http.get(f"{API}/statements/1/export", params={"format": "json"}).content
        api_csv = http.get(f"{API}/statements/1/export", params={"format": "csv"}).text
    assert [(s["number"], s["operation"], s["total"]) for s in listed] == [
        (1, "Acme BPO", OCTOBER_TOTAL),
        (2, "Twin BPO", OCTOBER_TOTAL),
    ]
    identity = ("number", "operation", "operation_id", "closed_at")
    assert {k: v for k, v in api_doc.items() if k not in identity} == {
        k: v for k, v in cli_doc.items() if k not in identity
    }
    # The API serves statement 1 as the CLI reads it from the database.
    assert api_json == cli("statement", "show", "1").encode().rstrip(b"\n")
    assert api_csv == cli("statement", "export", "1", "--format", "csv")
    assert api_lines == orjson.loads(cli("statement", "lines", "1"))
    by_meter = {line["meter"]: [e["event_id"] for e in line["events"]] for line in api_lines}
    assert by_meter == {"ivr_calls": ["oct-1", "oct-2"], "ivr_minutes": ["oct-3"]}


def test_exports_are_files_of_the_right_type(server, keys, closed):
    with _as(server, keys[Role.VIEWER]) as http:
        export = f"{API}/statements/1/export"
        pdf = http.get(export, params={"format": "pdf"})
        as_csv = http.get(export, params={"format": "csv"})
        as_json = http.get(export)
        preview = http.get(f"{API}/operations/Acme BPO/statement-preview", params={"format": "pdf"})
        refusals = {
            path: http.get(path)
            for path in (f"{export}?format=docx", f"{API}/statements/abc",
                         f"{API}/statements/99", f"{API}/statements/{'9' * 30}/lines")
        }  # fmt: skip
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == 'attachment; filename="statement-1.pdf"'
    assert pdf.content.startswith(b"%PDF")
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.headers["content-disposition"] == 'attachment; filename="statement-1.csv"'
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows[-1]["kind"] == "total" and rows[-1]["amount"] == OCTOBER_TOTAL
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.headers["content-disposition"] == 'attachment; filename="statement-1.json"'
    assert orjson.loads(as_json.content)["total"] == OCTOBER_TOTAL
    assert preview.headers["content-type"] == "application/pdf"
    assert preview.content.startswith(b"%PDF")
    assert [(r.status_code, r.json()["msg"]) for r in refusals.values()] == [
        (400, "INVALID PARAMETERS"),
        (400, "INVALID PARAMETERS"),
        (404, "NO STATEMENT NUMBERED 99"),
        (400, "INVALID PARAMETERS"),
    ]


def test_the_preview_rates_the_current_month_and_needs_a_subscription(
    server, store, clock, keys, closed
):
    asyncio.run(add_operation(store, clock, name="Unbilled"))
    with _as(server, keys[Role.VIEWER]) as http:
        preview = _ok(http.get(f"{API}/operations/Acme BPO/statement-preview"))[0]
        refused = http.get(f"{API}/operations/Unbilled/statement-preview")
    assert (preview["status"], preview["month"], preview["number"]) == ("preview", "2026-11", None)
    assert [(line["meter"], line["quantity"]) for line in preview["lines"]] == [
        ("ivr_calls", "12"),
        ("ivr_minutes", "0"),
    ]
    assert preview["total"] == "1.43"  # 12 x 0.10 = 1.20, tax 0.228 -> 0.23
    assert refused.status_code == 409
    assert refused.json()["msg"] == "THE OPERATION 'Unbilled' IS NOT SUBSCRIBED TO A PRICE BOOK"
