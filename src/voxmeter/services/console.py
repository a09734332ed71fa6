"""The admin API's and the console's use cases, bundled over their own store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from voxmeter.config import Settings
from voxmeter.domain.clock import Clock
from voxmeter.services import Services
from voxmeter.services.admins import AdminService
from voxmeter.services.insights import InsightService
from voxmeter.storage.admin import AdminStore


@dataclass(frozen=True, slots=True)
class ConsoleServices:
    services: Services
    admins: AdminService
    insights: InsightService
    store: AdminStore

    @classmethod
    def over(
        cls, services: Services, store: AdminStore, settings: Settings, clock: Clock
    ) -> ConsoleServices:
        admins = AdminService(store, clock, timedelta(hours=settings.admin_session_hours))
        return cls(
            services=services,
            admins=admins,
            insights=InsightService(services, admins, store, settings, clock),
            store=store,
        )
