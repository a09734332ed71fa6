"""The route table: every path, method and endpoint, in one place.

Routing, the metrics' path labels and the test that holds the OpenAPI
document to the routes all read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp

from voxmeter.contract import wire
from voxmeter.server import ingest, observability, openapi, reports
from voxmeter.server.admin import alerts, statements
from voxmeter.server.admin import api as admin
from voxmeter.server.console import pages


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    method: str
    handler: Callable[..., Any] | ASGIApp
    # A plain ASGI endpoint dispatched before Starlette's router: the hot path.
    direct: bool = False


ROUTES: tuple[Endpoint, ...] = (
    Endpoint(wire.BILLING_PATH, "GET", reports.billing, direct=True),
    Endpoint(wire.INFORMATION_PATH, "GET", reports.information, direct=True),
    Endpoint(wire.EVENTS_PATH, "POST", ingest.post_events),
    Endpoint(wire.EVENTS_PATH, "GET", ingest.list_events),
    Endpoint(wire.CORRECTIONS_PATH, "POST", ingest.post_corrections),
    Endpoint(wire.METRICS_PATH, "GET", observability.metrics),
    Endpoint(wire.HEALTH_PATH, "GET", observability.healthz),
    Endpoint(wire.READY_PATH, "GET", observability.readyz),
    Endpoint(wire.OPENAPI_PATH, "GET", openapi.openapi_json),
    Endpoint(wire.DOCS_PATH, "GET", openapi.docs),
    Endpoint(openapi.DOCS_ASSETS_PATH, "GET", openapi.docs_asset),
    # The admin API (admin keys or console sessions; never operation tokens).
    Endpoint(f"{admin.PREFIX}/session", "POST", admin.login),
    Endpoint(f"{admin.PREFIX}/session", "DELETE", admin.logout),
    Endpoint(f"{admin.PREFIX}/whoami", "GET", admin.whoami),
    Endpoint(f"{admin.PREFIX}/identities", "GET", admin.list_identities),
    Endpoint(f"{admin.PREFIX}/identities", "POST", admin.create_identity),
    Endpoint(f"{admin.PREFIX}/identities/{{name}}/disable", "POST", admin.disable_identity),
    Endpoint(f"{admin.PREFIX}/overview", "GET", admin.overview),
    Endpoint(f"{admin.PREFIX}/operations", "GET", admin.list_operations),
    Endpoint(f"{admin.PREFIX}/operations", "POST", admin.create_operation),
    Endpoint(f"{admin.PREFIX}/operations/{{name}}", "GET", admin.show_operation),
    Endpoint(f"{admin.PREFIX}/operations/{{name}}", "PATCH", admin.change_operation),
    Endpoint(f"{admin.PREFIX}/operations/{{name}}/archive", "POST", admin.archive_operation),
    Endpoint(f"{admin.PREFIX}/operations/{{name}}/portal-link", "POST", admin.portal_link),
    Endpoint(f"{admin.PREFIX}/operations/{{name}}/tokens", "GET", admin.list_tokens),
    Endpoint(f"{admin.PREFIX}/operations/{{name}}/tokens", "POST", admin.create_token),
    Endpoint(
        f"{admin.PREFIX}/operations/{{name}}/tokens/{{token_id}}", "DELETE", admin.revoke_token
    ),
    Endpoint(f"{admin.PREFIX}/tokens/{{token_id}}", "DELETE", admin.revoke_token_by_id),
    Endpoint(f"{admin.PREFIX}/operations/{{name}}/events", "GET", admin.search_events),
    Endpoint(f"{admin.PREFIX}/operations/{{name}}/rejections", "GET", admin.rejections),
    Endpoint(f"{admin.PREFIX}/operations/{{name}}/corrections", "POST", admin.corrections),
    Endpoint(f"{admin.PREFIX}/usage", "GET", admin.usage),
    Endpoint(f"{admin.PREFIX}/audit", "GET", admin.audit),
    Endpoint(f"{admin.PREFIX}/price-books", "GET", statements.list_price_books),
    Endpoint(f"{admin.PREFIX}/price-books", "POST", statements.create_price_book),
    Endpoint(f"{admin.PREFIX}/price-books/{{book}}", "GET", statements.show_price_book),
    Endpoint(f"{admin.PREFIX}/price-books/{{book}}/prices", "POST", statements.set_price),
    Endpoint(f"{admin.PREFIX}/price-books/{{book}}/terms", "POST", statements.set_terms),
    Endpoint(f"{admin.PREFIX}/operations/{{name}}/subscription", "PUT", statements.subscribe),
    Endpoint(f"{admin.PREFIX}/operations/{{name}}/statement-preview", "GET", statements.preview),
    Endpoint(f"{admin.PREFIX}/statements", "GET", statements.list_statements),
    Endpoint(f"{admin.PREFIX}/statements/close", "POST", statements.close),
    Endpoint(f"{admin.PREFIX}/statements/{{number}}", "GET", statements.show_statement),
    Endpoint(f"{admin.PREFIX}/statements/{{number}}/lines", "GET", statements.statement_lines),
    Endpoint(f"{admin.PREFIX}/statements/{{number}}/export", "GET", statements.export_statement),
    Endpoint(f"{admin.PREFIX}/caps", "GET", alerts.list_caps),
    Endpoint(f"{admin.PREFIX}/caps", "PUT", alerts.set_cap),
    Endpoint(f"{admin.PREFIX}/alert-rules", "GET", alerts.list_rules),
    Endpoint(f"{admin.PREFIX}/alert-rules", "POST", alerts.add_rule),
    Endpoint(f"{admin.PREFIX}/alerts", "GET", alerts.list_alerts),
    Endpoint(f"{admin.PREFIX}/webhooks", "GET", alerts.list_webhooks),
    Endpoint(f"{admin.PREFIX}/webhooks", "POST", alerts.add_webhook),
    Endpoint(f"{admin.PREFIX}/webhooks/{{endpoint_id}}/rotate", "POST", alerts.rotate_webhook),
    Endpoint(f"{admin.PREFIX}/deliveries", "GET", alerts.list_deliveries),
    Endpoint(f"{admin.PREFIX}/deliveries/{{delivery_id}}/replay", "POST", alerts.replay_delivery),
    # The web console and the client portal.
    Endpoint("/", "GET", pages.root),
    Endpoint("/console", "GET", pages.overview_page),
    Endpoint("/console/login", "GET", pages.login_page),
    Endpoint("/console/audit", "GET", pages.audit_page),
    Endpoint("/console/alerts", "GET", pages.alerts_page),
    Endpoint("/console/statements", "GET", pages.statements_page),
    Endpoint("/console/statements/{number}", "GET", pages.statement_page),
    Endpoint("/console/operations/{name}", "GET", pages.operation_page),
    Endpoint("/console/operations/{name}/events", "GET", pages.events_page),
    Endpoint("/console/static/{file}", "GET", pages.static),
    Endpoint("/console/static/vendor/{file}", "GET", pages.vendored),
    Endpoint("/portal/{token}", "GET", pages.portal),
)

PATHS = frozenset(route.path for route in ROUTES)
