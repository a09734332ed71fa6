"""voxmeter get / watch / history export, against a real voxmeter server."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from conftest import FakeClock, RunningServer, add_operation, add_token
from ledger_helpers import record
from voxmeter.cli import main
from voxmeter.client import Client
from voxmeter.client.history import History, watch
from voxmeter.contract.meters import BILLING_METERS
from voxmeter.storage.base import Store


@pytest.fixture
async def secret(store: Store, clock: FakeClock) -> str:
    operation = await add_operation(store, clock, licenses=2)
    await record(store, operation, clock(), ("ivr_calls", 12, "2026-11-03T10:00:00Z"))
    return await add_token(store, clock, operation)


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_get_prints_a_meter_in_each_format(server: RunningServer, secret: str):
    where = ("--base-url", server.base_url, "--token", secret)
    as_json = run("get", "ivr_calls", *where, "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    assert orjson.loads(as_json.stdout) == [
        {
            "api": "ivr_calls",
            "operation": "Acme BPO",
            "description": "IVR calls",
            "items": "12",
            "date": "2026-11-24",
        }
    ]
    as_table = run("get", "services", *where).stdout.splitlines()
    assert as_table[0].split()[:2] == ["licenses", "pbx"]
    everything = run("get", "--all", *where, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(everything.stdout)))
    assert [r["api"] for r in rows] == [m.api for m in BILLING_METERS]


def test_get_reports_refusals_and_usage_errors(server: RunningServer):
    refused = run("get", "ivr_calls", "--base-url", server.base_url, "--token", "bad")
    assert refused.exit_code == 1
    assert "PLEASE VALIDATE TOKEN" in refused.stderr
    assert run("get", "--base-url", server.base_url, "--token", "x").exit_code == 2
    assert run("get", "fax", "--base-url", server.base_url, "--token", "x").exit_code == 2
    assert run("get", "ivr_calls", "--server", "99999", "--token", "x").exit_code == 2


async def test_watch_keeps_both_months_across_the_boundary(
    server: RunningServer, store: Store, clock: FakeClock, secret: str, tmp_path: Path
):
    operation = (await store.list_operations())[0]
    clock.now = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)  # 23:00 on 30 Nov in Bogota
    await record(store, operation, clock(), ("ivr_calls", 3, "2026-11-30T20:00:00-05:00", "late"))

    def sleep(seconds: float) -> None:
        clock.advance(seconds=seconds)  # two hours on: 1 December in Bogota
        pauses.append(seconds)

    pauses: list[float] = []
    history = History(tmp_path / "history.db")
    with Client(secret, base_url=server.base_url) as client:
        stored = watch(client, history, ["ivr_calls"], 7200, 2, sleep, now=clock)
    assert stored == 2
    assert pauses == [7200]
    out = io.StringIO()
    assert history.export_csv(out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["date"], r["items"]) for r in rows] == [("2026-11-30", "15"), ("2026-12-01", "0")]
    november = io.StringIO()
    assert history.export_csv(november, month="2026-11") == 1
    history.close()


def test_watch_and_export_from_the_cli(server: RunningServer, secret: str, tmp_path: Path):
    path = tmp_path / "h.db"
    watched = run("watch", "ivr_calls", "interactions", "--history", str(path), "--count", "1",
                  "--base-url", server.base_url, "--token", secret)  # fmt: skip
    assert watched.exit_code == 0, watched.output
    figures = [line.split()[1:] for line in watched.stdout.splitlines()]
    assert figures == [["ivr_calls", "12", "2026-11-24"], ["interactions", "0", "2026-11-24"]]
    exported = run("history", "export", "--history", str(path))
    assert exported.stdout.splitlines()[0] == "taken_at,source,api,operation,description,items,date"
    assert len(exported.stdout.splitlines()) == 3
    bad = run("watch", "--every", "soon", "--history", str(path), "--base-url", "x", "--token", "t")
    assert bad.exit_code == 2
