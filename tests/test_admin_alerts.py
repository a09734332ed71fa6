"""Caps, alert rules, alerts, webhooks and deliveries through the admin API, on both stores."""

from __future__ import annotations

import httpx
import pytest

from admin_helpers import make_admin
from conftest import add_operation, free_port
from voxmeter.config import Settings
from voxmeter.domain.admins import IdentityKind, Role
from voxmeter.services import Services

API = "/admin/api/v1"
MOMENT = "2026-11-20T12:00:00Z"


@pytest.fixture
async def keys(database_url, clock):
    return {
        role: await make_admin(database_url, clock, f"{role.value}-key", role, IdentityKind.KEY)
        for role in Role
    }


@pytest.fixture
async def acme(store, clock):
    return await add_operation(store, clock)


def _as(server, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


def _ok(response: httpx.Response) -> list:
    assert response.status_code == 200, response.text
    return response.json()["data"]


# Every call and the least role allowed; the delivery and endpoint ids exist in the test.
ACTIONS = [
    ("GET", f"{API}/caps", None, Role.VIEWER),
    ("GET", f"{API}/alert-rules", None, Role.VIEWER),
    ("GET", f"{API}/alerts", None, Role.VIEWER),
    ("GET", f"{API}/webhooks", None, Role.VIEWER),
    ("GET", f"{API}/deliveries", None, Role.VIEWER),
    ("PUT", f"{API}/caps", {"operation": "Acme BPO", "meter": "ivr_calls", "quantity": "50"},
     Role.ADMIN),
    ("POST", f"{API}/alert-rules", {"meter": "ivr_calls", "levels": ["80%"]}, Role.ADMIN),
    ("POST", f"{API}/webhooks", {"url": "http://127.0.0.1:9/hook"}, Role.ADMIN),
    ("POST", f"{API}/webhooks/1/rotate", None, Role.ADMIN),
    ("POST", f"{API}/deliveries/1/replay", None, Role.ADMIN),
]  # fmt: skip


async def test_viewers_read_and_admins_change(server, store, database_url, clock, keys, acme):
    services = Services.over(store, Settings(database_url=database_url), clock)
    await services.alerts.add_endpoint(f"http://127.0.0.1:{free_port()}/hook")
    await services.alerts.add_rule("Acme BPO", "ivr_calls", ["5"])
    await services.usage.record(acme, [{"id": "a", "meter": "ivr_calls", "quantity": 6,
                                        "time": MOMENT}])  # fmt: skip
    for role in Role:
        for method, path, body, needed in ACTIONS:
            with _as(server, keys[role]) as http:
                response = http.request(method, path, json=body)
            allowed = role.allows(needed)
            assert response.status_code == (200 if allowed else 403), (role, path, response.text)


async def test_caps_rules_webhooks_and_deliveries_are_managed_and_audited(
    server, store, database_url, clock, keys, acme
):
    services = Services.over(store, Settings(database_url=database_url), clock)
    url = f"http://127.0.0.1:{free_port()}/hook"
    with _as(server, keys[Role.ADMIN]) as http:
        cap = {"operation": "Acme BPO", "meter": "ivr_calls", "quantity": "20"}
        assert _ok(http.put(f"{API}/caps", json=cap)) == [
            {"operation": "Acme BPO", "meter": "ivr_calls", "cap": "20"}
        ]
        (rule,) = _ok(http.post(f"{API}/alert-rules", json={"meter": "ivr_calls",
                                                             "levels": ["50%", "5"]}))  # fmt: skip
        assert (rule["operation"], rule["levels"]) == (None, ["5", "50%"])
        (added,) = _ok(http.post(f"{API}/webhooks", json={"url": url}))
        assert added["secret"].startswith("whsec_")
        (listed,) = _ok(http.get(f"{API}/webhooks"))
        assert "secret" not in listed and listed["secrets"] == 1
        await services.usage.record(acme, [{"id": "a", "meter": "ivr_calls", "quantity": 12,
                                            "time": MOMENT}])  # fmt: skip
        alerts = _ok(http.get(f"{API}/alerts"))
        assert sorted((a["kind"], a["level"], a["quantity"]) for a in alerts) == [
            ("crossed", "5", "12"), ("crossed", "50%", "12")
        ]  # fmt: skip
        deliveries = _ok(http.get(f"{API}/deliveries"))
        assert {d["alert"] for d in deliveries} == {a["id"] for a in alerts}
        assert {d["url"] for d in deliveries} == {url}
        _ok(http.post(f"{API}/deliveries/{deliveries[0]['id']}/replay"))
        (rotated,) = _ok(http.post(f"{API}/webhooks/{added['id']}/rotate"))
        assert rotated["secret"].startswith("whsec_") and rotated["secret"] != added["secret"]
        assert _ok(http.get(f"{API}/webhooks"))[0]["secrets"] == 2
        assert _ok(http.get(f"{API}/caps")) == [
            {"operation": "Acme BPO", "meter": "ivr_calls", "cap": "20"}
        ]
        log = _ok(http.get(f"{API}/audit"))
    actions = [entry["action"] for entry in log]
    for action in ("cap.set", "alert-rule.add", "webhook.add", "webhook.rotate", "delivery.replay"):
        assert action in actions
    text = str(log)
    assert added["secret"] not in text and rotated["secret"] not in text


async def test_bad_input_is_refused_and_changes_nothing(server, keys, acme):
    with _as(server, keys[Role.ADMIN]) as http:
        refusals = [
            http.put(f"{API}/caps", json={"operation": "Acme BPO", "meter": "ivr_calls",
                                          "quantity": 5}),
            http.put(f"{API}/caps", json={"operation": "Acme BPO", "meter": "agent_script",
                                          "quantity": "5"}),
            http.put(f"{API}/caps", json={"operation": "Nobody", "meter": "ivr_calls",
                                          "quantity": "5"}),
            http.post(f"{API}/alert-rules", json={"meter": "ivr_calls", "levels": "80%"}),
            http.post(f"{API}/alert-rules", json={"meter": "ivr_calls", "levels": ["lots"]}),
            http.post(f"{API}/webhooks", json={"url": "ftp://example.com"}),
            http.post(f"{API}/webhooks/99/rotate"),
            http.post(f"{API}/webhooks/x/rotate"),
            http.post(f"{API}/deliveries/99/replay"),
            http.get(f"{API}/alerts?limit=0"),
        ]  # fmt: skip
        assert [r.status_code for r in refusals] == [400, 400, 404, 400, 400, 400, 404, 400, 404,
                                                     400]  # fmt: skip
        assert all(r.json()["msg"] for r in refusals)
        for listing in ("caps", "alert-rules", "webhooks", "deliveries"):
            assert _ok(http.get(f"{API}/{listing}")) == []
        assert not [e for e in _ok(http.get(f"{API}/audit")) if e["action"] != "identity.create"]


async def _alerts_page(server, database_url, clock, role: Role) -> httpx.Response:
    """/console/alerts as a new person with ``role`` sees it, logged in to the console."""
    name = f"{role.value}-person"
    password = await make_admin(database_url, clock, name, role, IdentityKind.USER)
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        answer = http.post(f"{API}/session", json={"name": name, "password": password})
        assert answer.status_code == 200, answer.text
        # httpx's jar keeps no cookie for a bare IP address.
        cookie = answer.headers["set-cookie"].split(";")[0].removeprefix("voxmeter_session=")
        http.cookies.set("voxmeter_session", cookie)
        return http.get("/console/alerts")


async def test_the_console_lists_caps_rules_alerts_and_deliveries(
    server, store, database_url, clock, acme
):
    services = Services.over(store, Settings(database_url=database_url), clock)
    url = f"http://127.0.0.1:{free_port()}/hook"
    await services.alerts.add_endpoint(url)
    await services.alerts.set_cap("Acme BPO", "ivr_minutes", "12000")
    await services.alerts.add_rule("Acme BPO", "ivr_calls", ["5", "9"])
    await services.usage.record(acme, [{"id": "a", "meter": "ivr_calls", "quantity": 6,
                                        "time": MOMENT}])  # fmt: skip
    with httpx.Client(base_url=server.base_url, timeout=30) as anonymous:
        assert anonymous.get("/console/alerts").status_code in (302, 303, 307)
    page = await _alerts_page(server, database_url, clock, Role.ADMIN)
    assert page.status_code == 200, page.text
    for shown in ("12000", "5, 9", "crossed", url, 'class="replay"'):
        assert shown in page.text, shown
    page = await _alerts_page(server, database_url, clock, Role.VIEWER)
    assert page.status_code == 200 and url in page.text and 'class="replay"' not in page.text
