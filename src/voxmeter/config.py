"""Settings, read from ``VOXMETER_*`` environment variables.

Every limit has the default the wolkvox documentation states; docs/limits.md
lists them with the variable that changes each.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

MAX_CONCURRENCY_PER_TOKEN = 64


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///voxmeter.db"
    # PostgreSQL connections per worker process.
    pool_size: int = 10
    # One JSON line per request on stderr (never the token).
    access_logs: bool = True
    # Token discipline (documented limits).
    enforce_limits: bool = True
    concurrency_per_token: int = 2
    calls_per_license: int = 1000
    time_limit_seconds: float = 60.0
    max_records_down: int = 60_000
    max_result_bytes: int = 256 * 1024 * 1024
    max_range_days: int = 31
    # A testing aid for integrators: every admitted call takes at least this
    # long, so a client's handling of the simultaneous-request limit and of
    # the time limit can be exercised against voxmeter.
    simulated_latency_seconds: float = 0.0
    # Ingestion.
    max_events_up: int = 10_000
    max_body_bytes: int = 32 * 1024 * 1024
    previous_month_grace_hours: float = 48.0
    future_skew_seconds: float = 300.0
    # Statements: a month closes this long after it ends in the operation's
    # time zone, so late events still land in it; later ones become
    # adjustments on the next statement.
    statement_grace_hours: float = 48.0
    # Who issues the statements, as printed on them (the logo: a PNG or JPEG file).
    statement_issuer_name: str = "voxmeter"
    statement_issuer_address: str = ""
    statement_logo_path: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency_per_token <= MAX_CONCURRENCY_PER_TOKEN:
            raise ValueError(
                f"concurrency_per_token must be 1 to {MAX_CONCURRENCY_PER_TOKEN},"
                f" not {self.concurrency_per_token}"
            )
        for name in ("pool_size", "calls_per_license", "max_records_down", "max_result_bytes",
                     "max_range_days", "max_events_up", "max_body_bytes"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.statement_grace_hours < 0:
            raise ValueError("statement_grace_hours must not be negative")
        if self.time_limit_seconds <= 0:
            raise ValueError("time_limit_seconds must be positive")

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
