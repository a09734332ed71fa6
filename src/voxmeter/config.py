"""Settings, read from ``VOXMETER_*`` environment variables.

Every limit has the default the wolkvox documentation states; docs/limits.md
lists them with the variable that changes each.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from datetime import timedelta
from typing import Any

MAX_CONCURRENCY_PER_TOKEN = 64


_POSITIVE = (
    "pool_size", "calls_per_license", "max_report_records", "max_result_bytes", "max_range_days",
    "max_batch_events", "max_body_bytes", "max_body_values", "max_upload_bytes_in_flight",
    "max_query_parameters", "max_connections", "max_connections_per_address",
    "max_header_bytes", "max_header_count", "time_limit_seconds", "header_timeout_seconds",
    "body_timeout_seconds", "database_connect_timeout_seconds", "database_wait_seconds",
    "database_statement_timeout_seconds", "ready_timeout_seconds", "min_free_disk_bytes",
    "webhook_attempts", "webhook_backoff_seconds", "webhook_backoff_max_seconds",
    "webhook_timeout_seconds", "webhook_poll_seconds", "webhook_lease_seconds",
    "max_rejections_per_operation", "max_rejections",
)  # fmt: skip

# What a browser sends as Origin: scheme, host and port only, no path.
_ORIGIN = re.compile(r"https?://[^/\s,]+")


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///voxmeter.db"
    # PostgreSQL connections per worker process.
    pool_size: int = 10
    # One JSON line per request on stderr (never the token).
    access_logs: bool = True
    # When set, GET /metrics wants "Authorization: Bearer <this>". Kept out of
    # repr so that logging the settings never shows it.
    metrics_token: str = dataclass_field(default="", repr=False)
    # Token discipline (documented limits).
    enforce_limits: bool = True
    concurrency_per_token: int = 2
    calls_per_license: int = 1000
    time_limit_seconds: float = 60.0
    max_report_records: int = 60_000
    max_result_bytes: int = 256 * 1024 * 1024
    max_range_days: int = 31
    # A testing aid for integrators: every admitted call takes at least this
    # long, so a client's handling of the simultaneous-request limit and of
    # the time limit can be exercised against voxmeter.
    simulated_latency_seconds: float = 0.0
    # Ingestion.
    max_batch_events: int = 10_000
    max_body_bytes: int = 32 * 1024 * 1024
    # JSON values in one body (counted as its bytes arrive, before decoding):
    # what bounds the objects a body of tiny values like `{},{},...` decodes to.
    max_body_values: int = 1_000_000
    # Body bytes one worker holds for uploads at once; past it, 503 and
    # Retry-After. What bounds a worker's memory under many parallel uploads.
    max_upload_bytes_in_flight: int = 64 * 1024 * 1024
    # Rows the rejection log keeps, per operation and in total; the oldest
    # are dropped first (and counted) so refused batches cannot fill the disk.
    max_rejections_per_operation: int = 10_000
    max_rejections: int = 1_000_000
    previous_month_grace_hours: float = 48.0
    future_skew_seconds: float = 300.0
    # Connections (docs/deployment.md, "limits that protect the service").
    # Enforced by voxmeter.server.connections before a request reaches the app.
    max_connections: int = 1000
    # Behind a reverse proxy every caller shares its address: raise this there.
    max_connections_per_address: int = 100
    max_header_bytes: int = 16 * 1024
    max_header_count: int = 64
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    # Parameters in one query string; more are refused before they are parsed.
    max_query_parameters: int = 100
    # A networked database (PostgreSQL): how long to open a connection, how
    # long a call waits for a pooled one, how long one statement may run.
    # Past any of them the call is answered 503 rather than left hanging.
    database_connect_timeout_seconds: float = 2.0
    database_wait_seconds: float = 2.0
    database_statement_timeout_seconds: float = 30.0
    # Free space (beside a SQLite database) kept for call counting: below it,
    # uploads are refused 507 and /readyz says degraded; reports are served.
    min_free_disk_bytes: int = 64 * 1024 * 1024
    # GET /readyz answers within this, whatever the database does.
    ready_timeout_seconds: float = 1.0
    # Console: the key that signs client-portal links (none: no portal links),
    # how long a link and a browser session last.
    portal_secret: str = dataclass_field(default="", repr=False)
    portal_link_days: int = 30
    admin_session_hours: float = 12.0
    # Statements: a month closes this long after it ends in the operation's
    # time zone, so late events still land in it; later ones become
    # adjustments on the next statement.
    statement_grace_hours: float = 48.0
    # Who issues the statements, as printed on them (the logo: a PNG or JPEG file).
    statement_issuer_name: str = "voxmeter"
    statement_issuer_address: str = ""
    statement_logo_path: str = ""
    # Browser origins allowed to call (CORS), comma-separated; none by default.
    cors_origins: str = ""
    # Webhook delivery (docs/alerts.md): attempts per delivery before it is
    # marked failed, the first retry's delay (doubled each time, with jitter,
    # up to the maximum), each attempt's time limit, how often an idle worker
    # looks for due deliveries, and how long a claimed delivery stays leased.
    webhook_attempts: int = 12
    webhook_backoff_seconds: float = 5.0
    webhook_backoff_max_seconds: float = 3600.0
    webhook_timeout_seconds: float = 10.0
    webhook_poll_seconds: float = 1.0
    webhook_lease_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency_per_token <= MAX_CONCURRENCY_PER_TOKEN:
            raise ValueError(
                f"concurrency_per_token must be 1 to {MAX_CONCURRENCY_PER_TOKEN},"
                f" not {self.concurrency_per_token}"
            )
        for name in _POSITIVE:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.statement_grace_hours < 0:
            raise ValueError("statement_grace_hours must not be negative")
        for origin in self.allowed_origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"cors_origins: {origin!r} is not an origin like https://app.example.com"
                )

    @property
    def allowed_origins(self) -> frozenset[str]:
        """The origins :attr:`cors_origins` lists."""
        return frozenset(part.strip() for part in self.cors_origins.split(",") if part.strip())

    @property
    def previous_month_grace(self) -> timedelta:
        return timedelta(hours=self.previous_month_grace_hours)

    @property
    def statement_grace(self) -> timedelta:
        return timedelta(hours=self.statement_grace_hours)

    @property
    def future_skew(self) -> timedelta:
        return timedelta(seconds=self.future_skew_seconds)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``VOXMETER_<FIELD>`` variables, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = env.get(f"VOXMETER_{field.name.upper()}")
            if raw is None:
                continue
            kind: Callable[[str], Any] = type(field.default)
            if kind is bool:
                values[field.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                try:
                    values[field.name] = kind(raw)
                except ValueError:
                    raise ValueError(
                        f"VOXMETER_{field.name.upper()}={raw!r} is not a valid"
                        f" {type(field.default).__name__}"
                    ) from None
        values.update(overrides)
        return cls(**values)
