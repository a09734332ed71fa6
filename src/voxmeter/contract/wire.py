"""Where the contract is spoken: paths and headers, shared by server and client."""

from __future__ import annotations

from voxmeter.contract.meters import Family

TOKEN_HEADER = "wolkvox-token"
# On a listing of refused events: how many older ones were dropped to bound the log.
REJECTIONS_DROPPED_HEADER = "X-Rejections-Dropped"
# Sent by some platform clients; accepted and ignored.
SERVER_HEADERS = ("wolkvox_server", "wolkvox-server")

BILLING_PATH = "/api/v2/billing.php"
INFORMATION_PATH = "/api/v2/information.php"
REPORT_PATHS = {Family.BILLING: BILLING_PATH, Family.INFORMATION: INFORMATION_PATH}
EVENTS_PATH = "/api/v2/events"
CORRECTIONS_PATH = "/api/v2/events/corrections"

METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
