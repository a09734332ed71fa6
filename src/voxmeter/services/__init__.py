"""The use cases: the one implementation of each workflow.

HTTP handlers, CLI commands, the demo and any future entry point (an admin
API, a console) call these and never a store directly, so each workflow
(record usage, correct it, list it, administer operations and tokens, report,
verify the ledger) exists once, with its validation, its rejection log and
its metrics. Refusals are :class:`voxmeter.contract.errors.ApiError`, the
one error type every entry point knows how to show.
"""

from __future__ import annotations

from dataclasses import dataclass

from voxmeter.config import Settings
from voxmeter.domain.clock import Clock
from voxmeter.services.access import AccessService
from voxmeter.services.admin import OperationService, TokenService
from voxmeter.services.alerts import AlertService
from voxmeter.services.health import HealthService
from voxmeter.services.ledger import LedgerService
from voxmeter.services.reports import ReportService
from voxmeter.services.statements import StatementService
from voxmeter.services.usage import UsageService
from voxmeter.storage import schema
from voxmeter.storage.base import Store
from voxmeter.storage.statements import statement_store


@dataclass(frozen=True, slots=True)
class Services:
    """Every use case, bound to one store, one set of settings and one clock."""

    access: AccessService
    operations: OperationService
    tokens: TokenService
    usage: UsageService
    reports: ReportService
    ledger: LedgerService
    health: HealthService
    statements: StatementService
    alerts: AlertService

    @classmethod
    def over(cls, store: Store, settings: Settings, clock: Clock) -> Services:
        return cls(
            access=AccessService(store, settings),
            operations=OperationService(store, clock),
            tokens=TokenService(store, settings, clock),
            usage=UsageService(store, settings, clock),
            reports=ReportService(store),
            ledger=LedgerService(store),
            health=HealthService(store, schema.head_revision(), settings.min_free_disk_bytes),
            statements=StatementService(store, statement_store(store.url), settings, clock),
            alerts=AlertService(store, clock),
        )
