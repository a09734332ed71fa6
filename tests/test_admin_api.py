"""The admin API's security: roles, keys versus tokens, sessions, CSRF, audit, portal links."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import orjson
import psycopg
import pytest
from click.testing import CliRunner

from admin_helpers import make_admin
from conftest import add_operation, add_token
from ledger_helpers import ledger_event, record
from voxmeter.cli import main
from voxmeter.domain.admins import IdentityKind, Role
from voxmeter.domain.models import Rejection, TokenScope
from voxmeter.services.admins import (
    LOGIN_FAILURES_PER_ADDRESS,
    LOGIN_FAILURES_PER_NAME,
    LOGIN_WINDOW_SECONDS,
    LoginThrottle,
)
from voxmeter.services.usage import PAYLOAD_BYTES_KEPT, PAYLOADS_KEPT_PER_BATCH

API = "/admin/api/v1"


@pytest.fixture
async def keys(database_url, clock):
    return {
        role: await make_admin(database_url, clock, f"{role.value}-key", role, IdentityKind.KEY)
        for role in Role
    }


@pytest.fixture
async def acme(store, clock):
    operation = await add_operation(store, clock, licenses=10)
    await record(store, operation, clock(), ("ivr_calls", 7, "2026-11-20T12:00:00Z", "a-1"))
    return operation


def _as(server, secret: str | None) -> httpx.Client:
    headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=30)


# What each role may do: (method, path, body, least role allowed).
ACTIONS = [
    ("GET", f"{API}/operations", None, Role.VIEWER),
    ("GET", f"{API}/usage?month=2026-11", None, Role.VIEWER),
    ("GET", f"{API}/audit", None, Role.VIEWER),
    ("GET", f"{API}/operations/Acme BPO/rejections", None, Role.VIEWER),
    ("POST", f"{API}/operations", {"name": "New Op", "licenses": 2}, Role.ADMIN),
    ("PATCH", f"{API}/operations/Acme BPO", {"licenses": 4}, Role.ADMIN),
    ("POST", f"{API}/operations/Acme BPO/tokens", {"description": "x"}, Role.ADMIN),
    ("POST", f"{API}/operations/Acme BPO/corrections",
     {"corrections": [{"id": "a-1", "action": "void"}]}, Role.ADMIN),
    ("GET", f"{API}/identities", None, Role.OWNER),
    ("POST", f"{API}/identities", {"name": "new person", "role": "viewer"}, Role.OWNER),
]  # fmt: skip


@pytest.mark.parametrize("role", list(Role))
def test_each_role_is_allowed_and_refused_what_it_should(server, keys, acme, role):
    for method, path, body, needed in ACTIONS:
        with _as(server, keys[role]) as http:
            response = http.request(method, path, json=body)
        allowed = role.allows(needed)
        assert response.status_code == (200 if allowed else 403), (method, path, response.text)
        if not allowed:
            assert response.json()["msg"] == f"THIS ACTION NEEDS THE {needed.value.upper()} ROLE"


def test_operation_tokens_and_admin_keys_are_never_taken_for_each_other(
    server, store, clock, keys, acme
):
    token = asyncio.run(add_token(store, clock, acme))
    with _as(server, token) as http:
        assert http.get(f"{API}/operations").status_code == 401
    with httpx.Client(
        base_url=server.base_url, headers={"wolkvox-token": keys[Role.OWNER]}
    ) as http:
        answer = http.get("/api/v2/billing.php?api=ivr_calls")
        assert answer.status_code == 403
        assert http.get(f"{API}/operations").status_code == 401
    with _as(server, keys[Role.OWNER][:-1] + "x") as http:
        assert http.get(f"{API}/operations").status_code == 401


def test_usage_reads_spend_no_operation_quota(server, store, clock, keys, acme):
    token = asyncio.run(add_token(store, clock, acme))
    with _as(server, keys[Role.VIEWER]) as http:
        for _ in range(3):
            rows = http.get(f"{API}/usage", params={"month": "2026-11", "meter": "ivr_calls"})
            assert rows.status_code == 200
        overview = http.get(f"{API}/overview").json()["data"]
    assert overview[0]["calls_today"] == 0
    assert sum(int(r["items"]) for r in rows.json()["data"]) == 7
    with server.client(token) as http:
        billing = http.get("/api/v2/billing.php?api=ivr_calls").json()["data"][0]["items"]
    assert overview[0]["meters"]["ivr_calls"]["items"] == billing == "7"


def test_usage_by_attribute_in_json_and_csv(server, store, clock, keys):
    operation = asyncio.run(add_operation(store, clock, name="Grouped"))
    batch = [
        ledger_event(operation, "ivr_calls", 5, "2026-11-02T12:00:00Z", "g-1"),
        ledger_event(operation, "ivr_calls", 2, "2026-11-03T12:00:00Z", "g-2"),
    ]
    batch = [
        msgspec.structs.replace(e, attributes=f'{{"campaign":"{campaign}"}}')
        for e, campaign in zip(batch, ["spring", "autumn"], strict=True)
    ]
    asyncio.run(store.record_events(operation.id, batch, clock()))
    params = {
        "month": "2026-11",
        "operation": "Grouped",
        "meter": "ivr_calls",
        "group_by": "campaign",
    }
    with _as(server, keys[Role.VIEWER]) as http:
        rows = http.get(f"{API}/usage", params=params).json()["data"]
        text = http.get(f"{API}/usage", params={**params, "format": "csv"}).text
    assert {(r["campaign"], r["items"]) for r in rows} == {("spring", "5"), ("autumn", "2")}
    assert text.splitlines()[0] == "operation,meter,month,campaign,items"
    assert "Grouped,ivr_calls,2026-11,spring,5" in text


@pytest.fixture
async def person(database_url, clock):
    password = await make_admin(database_url, clock, "ana", Role.ADMIN, IdentityKind.USER)
    return "ana", password


def _login(http: httpx.Client, person) -> httpx.Response:
    """Log in, and keep the session cookie (httpx's jar keeps none for a bare IP address)."""
    name, password = person
    response = http.post(f"{API}/session", json={"name": name, "password": password})
    if response.status_code == 200:
        value = response.headers["set-cookie"].split(";")[0].removeprefix("voxmeter_session=")
        http.cookies.set("voxmeter_session", value)
    return response


def test_login_sets_a_new_strict_httponly_session_and_refuses_bad_passwords(server, person):
    with httpx.Client(base_url=server.base_url) as http:
        assert (
            http.post(f"{API}/session", json={"name": "ana", "password": "wrong"}).status_code
            == 401
        )
        http.cookies.set("voxmeter_session", "planted-by-an-attacker")
        response = _login(http, person)
        assert response.status_code == 200
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP here; over TLS it is set (see below)
        issued = cookie.split(";")[0].removeprefix("voxmeter_session=")
        assert len(issued) > 40 and issued != "planted-by-an-attacker"
    with httpx.Client(
        base_url=server.base_url, cookies={"voxmeter_session": "planted-by-an-attacker"}
    ) as http:
        assert http.get(f"{API}/whoami").status_code == 401


# Starlette's test client is the one way here to speak https to the app itself.
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_session_cookie_is_secure_over_tls(server, person):
    from starlette.testclient import TestClient

    from voxmeter.server.app import create_app

    with TestClient(create_app(server.settings), base_url="https://console.test") as http:
        response = _login(http, person)
        assert "Secure" in response.headers["set-cookie"]


def test_unsafe_calls_on_a_session_need_the_csrf_token(server, person, acme):
    with httpx.Client(base_url=server.base_url) as http:
        csrf = _login(http, person).json()["data"][0]["csrf"]
        body = {"licenses": 5}
        assert http.patch(f"{API}/operations/Acme BPO", json=body).status_code == 403
        refused = http.patch(
            f"{API}/operations/Acme BPO", json=body, headers={"X-CSRF-Token": "x" * 43}
        )
        assert refused.json()["msg"] == "THE CSRF TOKEN IS MISSING OR DOES NOT MATCH"
        assert http.get(f"{API}/operations").json()["data"][0]["licenses"] == 10
        ok = http.patch(f"{API}/operations/Acme BPO", json=body, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200
        assert http.get(f"{API}/operations").json()["data"][0]["licenses"] == 5


def test_every_mutation_is_in_the_audit_log_with_before_and_after(server, keys, acme):
    with _as(server, keys[Role.OWNER]) as http:
        http.post(f"{API}/operations", json={"name": "Beta", "licenses": 1}).raise_for_status()
        http.patch(f"{API}/operations/Beta", json={"licenses": 3}).raise_for_status()
        token = http.post(f"{API}/operations/Beta/tokens", json={}).json()["data"][0]
        http.delete(f"{API}/operations/Beta/tokens/{token['id']}").raise_for_status()
        void = {"corrections": [{"id": "a-1", "action": "void"}]}
        http.post(f"{API}/operations/Acme BPO/corrections", json=void).raise_for_status()
        http.post(f"{API}/operations/Beta/archive").raise_for_status()
        http.post(f"{API}/identities", json={"name": "zoe", "kind": "key"}).raise_for_status()
        refused = http.patch(f"{API}/operations/Beta", json={"licenses": -1})
        assert refused.status_code == 400
        log = http.get(f"{API}/audit").json()["data"]
    actions = [(e["actor"], e["action"], e["target"]) for e in reversed(log)]
    assert actions[-7:] == [
        ("owner-key", "operation.create", "Beta"),
        ("owner-key", "operation.change", "Beta"),
        ("owner-key", "token.create", "Beta"),
        ("owner-key", "token.revoke", f"Beta/{token['id']}"),
        ("owner-key", "usage.correct", "Acme BPO"),
        ("owner-key", "operation.archive", "Beta"),
        ("owner-key", "identity.create", "zoe"),
    ]
    change = next(e for e in log if e["action"] == "operation.change")
    assert change["before"]["licenses"] == 1 and change["after"]["licenses"] == 3
    assert token["secret"] not in str(log)


def test_the_audit_log_refuses_changes_in_the_database(server, keys, database_url):
    with _as(server, keys[Role.OWNER]) as http:
        http.post(f"{API}/operations", json={"name": "Gamma", "licenses": 1}).raise_for_status()
    for statement in ("UPDATE admin_audit SET actor = 'someone else'", "DELETE FROM admin_audit"):
        if database_url.startswith("postgresql://"):
            with (
                pytest.raises(psycopg.Error),
                psycopg.connect(database_url, autocommit=True) as conn,
            ):
                conn.execute(statement)
        else:
            path = database_url.removeprefix("sqlite:///")
            with pytest.raises(sqlite3.DatabaseError), sqlite3.connect(path) as db:
                db.execute(statement)


@pytest.fixture
def settings_overrides():
    return {"portal_secret": "portal-test-secret"}


def test_portal_links_show_one_operation_and_refuse_tampering(server, keys, acme):
    with _as(server, keys[Role.ADMIN]) as http:
        http.post(f"{API}/operations", json={"name": "Other", "licenses": 1}).raise_for_status()
        url = http.post(f"{API}/operations/Acme BPO/portal-link").json()["data"][0]["url"]
    token = url.rsplit("/", 1)[1]
    name, expires, mac = token.split(".")
    with httpx.Client(base_url=server.base_url) as http:
        page = http.get(f"/portal/{token}")
        assert page.status_code == 200 and "Acme BPO" in page.text and "Other" not in page.text
        other = "T3RoZXI"  # "Other", base64url
        for forged in (f"{other}.{expires}.{mac}", f"{name}.{int(expires) + 1}.{mac}",
                       f"{name}.{expires}.{'0' * 64}", "garbage"):  # fmt: skip
            refused = http.get(f"/portal/{forged}")
            assert refused.status_code == 403, forged
            assert "Other" not in refused.text
        assert http.get(f"{API}/operations").status_code == 401


def test_the_rejections_listing_says_how_many_were_dropped(server, store, clock, keys, acme):
    refused = [Rejection(i, f"r-{i}", "bad") for i in range(5)]
    asyncio.run(store.log_rejections(acme.id, refused, clock(), keep_per_operation=2, keep=100))
    with _as(server, keys[Role.VIEWER]) as http:
        answer = http.get(f"{API}/operations/Acme BPO/rejections")
    assert [r["id"] for r in answer.json()["data"]] == ["r-4", "r-3"]
    assert answer.headers["X-Rejections-Dropped"] == "3"


def test_repeated_login_failures_are_refused_for_a_while_by_name_and_by_address(
    server, person, clock
):
    name, password = person
    with httpx.Client(base_url=server.base_url) as http:
        for _ in range(LOGIN_FAILURES_PER_NAME):
            wrong = http.post(f"{API}/session", json={"name": name, "password": "wrong"})
            assert wrong.status_code == 401
        # Even the right password is refused now: guessing stops, and the wait is told.
        refused = http.post(f"{API}/session", json={"name": name, "password": password})
        assert refused.status_code == 429
        assert refused.json()["msg"] == "TOO MANY FAILED LOGINS; TRY AGAIN LATER"
        assert 0 < int(refused.headers["retry-after"]) <= LOGIN_WINDOW_SECONDS
        clock.advance(seconds=LOGIN_WINDOW_SECONDS)
        assert _login(http, person).status_code == 200
        # From one address, failures on many names add up too.
        for attempt in range(LOGIN_FAILURES_PER_ADDRESS):
            body = {"name": f"guess-{attempt}", "password": "wrong"}
            assert http.post(f"{API}/session", json=body).status_code == 401
        refused = http.post(f"{API}/session", json={"name": name, "password": password})
        assert refused.status_code == 429


def test_a_disabled_identity_is_refused_at_once_and_the_disabling_is_audited(
    server, keys, person, database_url
):
    name, password = person
    with httpx.Client(base_url=server.base_url) as browser:
        assert _login(browser, person).status_code == 200
        assert browser.get(f"{API}/whoami").status_code == 200
        with _as(server, keys[Role.ADMIN]) as http:
            refused = http.post(f"{API}/identities/{name}/disable")
            assert refused.status_code == 403  # owners only
        with _as(server, keys[Role.OWNER]) as http:
            disabled = http.post(f"{API}/identities/{name}/disable")
            assert disabled.status_code == 200, disabled.text
            assert disabled.json()["data"][0]["disabled_at"] is not None
            again = http.post(f"{API}/identities/{name}/disable")
            assert again.status_code == 409
            unknown = http.post(f"{API}/identities/nobody/disable")
            assert unknown.json()["msg"] == "NO ADMIN NAMED 'nobody'"
            disabled_key = http.post(f"{API}/identities/viewer-key/disable")
            assert disabled_key.status_code == 200
            log = http.get(f"{API}/audit").json()["data"]
        assert browser.get(f"{API}/whoami").status_code == 401
        login = browser.post(f"{API}/session", json={"name": name, "password": password})
        assert login.status_code == 401
    with _as(server, keys[Role.VIEWER]) as http:
        assert http.get(f"{API}/operations").status_code == 401
    disabling = [e for e in log if e["action"] == "identity.disable"]
    assert [(e["actor"], e["target"]) for e in disabling] == [
        ("owner-key", "viewer-key"),
        ("owner-key", name),
    ]
    assert disabling[1]["before"]["disabled_at"] is None
    assert disabling[1]["after"]["disabled_at"] is not None
    # The command line disables too, refusing what is disabled already.
    runner = CliRunner()
    env = {"VOXMETER_DATABASE_URL": database_url}
    cli = runner.invoke(main, ["admin", "disable", "admin-key"], env=env)
    assert cli.exit_code == 0, cli.output
    with _as(server, keys[Role.ADMIN]) as http:
        assert http.get(f"{API}/operations").status_code == 401
    cli = runner.invoke(main, ["admin", "disable", "admin-key"], env=env)
    assert cli.exit_code != 0 and "ALREADY DISABLED" in cli.stderr


def test_the_rejection_log_shows_what_was_sent_bounded_and_cut_short(
    server, store, clock, keys, acme
):
    token = asyncio.run(add_token(store, clock, acme, scope=TokenScope.INGEST))
    huge = {"id": "big-1", "meter": "no_such_meter", "quantity": 1,
            "time": "2026-11-24T10:00:00Z", "note": "é" * PAYLOAD_BYTES_KEPT}  # fmt: skip
    many = [{"id": f"bad-{i}", "quantity": 1} for i in range(PAYLOADS_KEPT_PER_BATCH + 5)]
    with server.client(token) as http:
        assert http.post("/api/v2/events", json={"events": [huge]}).status_code == 400
        clock.advance(seconds=1)
        assert http.post("/api/v2/events", json={"events": many}).status_code == 400
    with _as(server, keys[Role.VIEWER]) as http:
        rows = http.get(f"{API}/operations/Acme BPO/rejections", params={"limit": 1000})
    found = {r["id"]: r for r in rows.json()["data"]}
    kept = found["big-1"]["sent"]
    assert kept.startswith('{"id":"big-1","meter":"no_such_meter"') and kept.endswith("...")
    assert len(kept.encode()) <= PAYLOAD_BYTES_KEPT
    assert orjson.loads(found["bad-3"]["sent"]) == {"id": "bad-3", "quantity": 1}
    last = PAYLOADS_KEPT_PER_BATCH + 4
    assert found[f"bad-{PAYLOADS_KEPT_PER_BATCH - 1}"]["sent"] is not None
    assert found[f"bad-{last}"]["sent"] is None and found[f"bad-{last}"]["reason"]


def test_the_login_throttle_forgets_the_least_recent_keys_past_its_bound():
    start = datetime(2026, 11, 24, tzinfo=UTC)
    throttle = LoginThrottle(limit=2, window=timedelta(minutes=1), remembered=3)
    for key in ("a", "a", "b", "c", "d"):
        throttle.failed(key, start)
    # "a" failed first and fewest keys are kept: it is forgotten, the rest are not.
    assert throttle.wait("a", start) is None
    throttle.failed("d", start)
    assert throttle.wait("d", start) == timedelta(minutes=1)
