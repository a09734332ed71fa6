"""The overview reads every operation at once and answers what the billing endpoint would."""

from __future__ import annotations

from conftest import add_operation
from ledger_helpers import record
from voxmeter.config import Settings
from voxmeter.contract.meters import BILLING_METERS
from voxmeter.domain.periods import Period
from voxmeter.services import Services
from voxmeter.services.console import ConsoleServices
from voxmeter.storage.admin import open_admin_store


async def test_overview_equals_the_figures_read_one_by_one(store, database_url, clock):
    # 2026-11-24 15:00 UTC; Pacific/Kiritimati is already on the 25th.
    lima = await add_operation(store, clock, name="Lima", timezone="America/Lima", licenses=2)
    kiri = await add_operation(store, clock, name="Kiri", timezone="Pacific/Kiritimati")
    await add_operation(store, clock, name="Idle", licenses=1)
    for operation in (lima, kiri):
        await record(
            store, operation, clock(),
            ("ivr_calls", 7, "2026-11-20T12:00:00Z", "now-1"),
            ("ivr_calls", 5, "2026-11-24T14:00:00Z", "now-2"),
            ("ivr_minutes", "2.5", "2026-11-03T12:00:00Z", "now-3"),
            ("ivr_calls", 4, "2026-10-02T12:00:00Z", "before-1"),
            ("ivr_calls", 9, "2026-10-30T12:00:00Z", "after-the-same-day"),
            ("agent_script", 3, "2026-10-10T12:00:00Z", "gauge-1"),
            ("agent_script", 6, "2026-11-22T12:00:00Z", "gauge-2"),
        )  # fmt: skip
    await record(store, kiri, clock(), ("ivr_calls", 2, "2026-11-24T12:00:00Z", "kiri-late"))
    settings = Settings(database_url=database_url)
    services = Services.over(store, settings, clock)
    admin_store = await open_admin_store(database_url)
    try:
        console = ConsoleServices.over(services, admin_store, settings, clock)
        summaries = await console.insights.overview()
    finally:
        await admin_store.close()

    assert [s.operation.name for s in summaries] == [
        op.name for op in await services.operations.list()
    ]
    for summary in summaries:
        today = summary.today
        this_month, last_month = (
            Period.month_to_date(today),
            Period.month_to_date(today.replace(month=10)),
        )
        expected = [
            (
                meter.api,
                await services.reports.figure(summary.operation, meter, this_month),
                await services.reports.figure(summary.operation, meter, last_month),
            )
            for meter in BILLING_METERS
        ]
        assert [(f.meter, f.items, f.same_day_last_month) for f in summary.figures] == expected
    by_name = {s.operation.name: s for s in summaries}
    assert by_name["Kiri"].today.day == 25
    ivr = {name: by_name[name].figures[[m.api for m in BILLING_METERS].index("ivr_calls")]
           for name in ("Lima", "Kiri", "Idle")}  # fmt: skip
    assert (ivr["Lima"].items, ivr["Lima"].same_day_last_month) == ("12", "4")
    assert (ivr["Kiri"].items, ivr["Idle"].items) == ("14", "0")
    assert ivr["Lima"].change == 2.0
